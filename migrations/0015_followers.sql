-- Durable followers (homeserver/log/followers.py): whatever reacts to the log
-- (command expiry, later push, email, device lists) reads it from its own
-- tracking position and records the new one in the transaction that writes
-- its output.
--
-- Not in the log, and not a projection: a follower's progress through the log
-- is bookkeeping about the log. Rebuilt from position 0 it would redo every
-- side effect (a push sent twice), so it is kept, not replayed, and
-- `audit replay` does not compare it.
CREATE TABLE follower_positions (
    -- The key of the follower's lease: a session advisory lock on
    -- (7240002, follower_id), held by the one process that runs it.
    follower_id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    -- Every event at or before this stream position has been handled.
    position bigint NOT NULL CHECK (position >= 0),
    updated_ts bigint NOT NULL
);
