-- Mutes in force (homeserver/moderation): a projection of the rooms'
-- com.linkchat.mute state (projections/mutes.py), so `audit replay` rebuilds
-- it. One row per (room, muted user) while muted: who muted (the fact's
-- sender), the level they hold while muted and the one an unmute gives back,
-- when, until when (NULL: until someone lifts it), and why. The expiry
-- follower rebuilds its timers from the rows with an expires_ts.
CREATE TABLE room_mutes (
    room_id         TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    muted_by        TEXT NOT NULL,
    level           BIGINT NOT NULL,
    previous_level  BIGINT NOT NULL,
    muted_ts        BIGINT NOT NULL,
    expires_ts      BIGINT,
    reason          TEXT,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_mutes_by_expiry ON room_mutes (expires_ts) WHERE expires_ts IS NOT NULL;
