-- Push notifications (homeserver/push). A user's push rules are not here: they
-- are a fact of their account chain (the m.push_rules account data), so the
-- `account_data` projection holds them and `audit replay` rebuilds them.

-- Notifications: one row per (user, event) their push rules said to notify of
-- (`notify` among the actions), written by the push follower in the
-- transaction that moves its position. Not a projection: it is the follower's
-- output, from the rules, names and memberships as they were when it read the
-- event, and rebuilding it from position 0 would evaluate old events with
-- today's rules. `GET /notifications` reads it, and /sync counts its rows after
-- the user's read receipts (unread_notifications).
CREATE TABLE push_notifications (
    user_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    stream_position BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    thread_id       TEXT NOT NULL,   -- 'main', or the root of the event's thread
    highlight       BOOLEAN NOT NULL,
    actions         TEXT NOT NULL,   -- the matched rule's actions, JSON
    ts              BIGINT NOT NULL, -- when it was recorded
    -- The only index, as every row costs its upkeep: counts read a room's rows after a
    -- receipt, GET /notifications merges the user's rooms newest first.
    PRIMARY KEY (user_id, room_id, stream_position)
);

-- Pushers (POST /pushers/set). Not in the log: a pusher belongs to the access
-- token that made it, and tokens are secrets outside the log; it dies with its
-- token (logout, device deletion, a password change that logs devices out),
-- which the foreign key does in the same statement.
CREATE TABLE pushers (
    pusher_id           BIGSERIAL PRIMARY KEY,
    user_id             TEXT NOT NULL,
    token_hash          TEXT NOT NULL REFERENCES access_tokens (token_hash) ON DELETE CASCADE,
    kind                TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT,
    lang                TEXT NOT NULL,
    data                TEXT NOT NULL,   -- JSON: url, format, and what the client adds
    created_ts          BIGINT NOT NULL,
    UNIQUE (user_id, app_id, pushkey)
);
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
CREATE INDEX pushers_by_token ON pushers (token_hash);

-- The outbox: one row per (pusher, notification) still to POST to the pusher's
-- gateway, written by the push follower with the notification, deleted once the
-- gateway took it. Not in the log: delivery bookkeeping. A crash after the POST
-- and before the delete sends that one again (at least once, never lost).
CREATE TABLE push_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    pusher_id       BIGINT NOT NULL REFERENCES pushers (pusher_id) ON DELETE CASCADE,
    stream_position BIGINT NOT NULL,
    notification    TEXT NOT NULL,   -- JSON: the Push Gateway API's notification, less devices
    tweaks          TEXT NOT NULL,   -- JSON: the matched rule's tweaks
    created_ts      BIGINT NOT NULL
);
CREATE INDEX push_outbox_by_pusher ON push_outbox (pusher_id, seq);
