-- Friends and blocks: projections of the account chains (@user), rebuilt from
-- the log by homeserver/projections/friends.py. The facts themselves are
-- `com.linkchat.friend` and `com.linkchat.friend.block` state events, keyed by
-- the other user, in the chain of each side.

-- Each user's relation to another: a request one way or the other, or
-- friendship. `ts` is when the request was sent, or since when they are
-- friends; `room_id` is the friends' direct chat.
CREATE TABLE friend_relations (
    user_id         TEXT NOT NULL,
    other_id        TEXT NOT NULL,
    relation        TEXT NOT NULL,  -- outgoing | incoming | friends
    message         TEXT,
    ts              BIGINT NOT NULL,
    room_id         TEXT,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (user_id, other_id)
);

-- Who blocked whom. Looked up by the blocked user when they invite someone.
CREATE TABLE user_blocks (
    user_id         TEXT NOT NULL,
    blocked_id      TEXT NOT NULL,
    ts              BIGINT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX user_blocks_by_blocked ON user_blocks (blocked_id);
