-- Blocked rooms (homeserver/moderation): a projection of the moderation chain's
-- com.linkchat.room.block facts (projections/room_blocks.py), so `audit replay`
-- rebuilds it. Nobody joins, knocks on or is invited to a room here (the rule
-- reads it under the append lock), and the public directory leaves it out.
CREATE TABLE blocked_rooms (
    room_id         TEXT PRIMARY KEY,
    blocked_by      TEXT NOT NULL,
    stream_position BIGINT NOT NULL
);
