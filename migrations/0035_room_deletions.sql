-- Deleted rooms (homeserver/moderation, DELETE /_synapse/admin/v2/rooms/{roomId}).

-- Purged rooms: a projection of the moderation chain's com.linkchat.room.purged
-- facts (projections/room_blocks.py), so `audit replay` rebuilds it. The log keeps
-- the room's events (it is append-only), but nobody reads (rooms/access.py) or
-- enters (moderation/room_blocks.py) a purged room, and no list shows it.
CREATE TABLE purged_rooms (
    room_id         TEXT PRIMARY KEY,
    purged_by       TEXT NOT NULL,
    stream_position BIGINT NOT NULL
);

-- The background deletions and how they went, for GET .../delete_status. Not in the
-- log and not a projection: bookkeeping of work in progress (what each step did is
-- in the log: the leaves, forgets, block, purge and the room.delete record). Shown
-- for 24 hours after they end, as Synapse.
CREATE TABLE room_deletions (
    delete_id  TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    admin_id   TEXT NOT NULL,
    status     TEXT NOT NULL,  -- scheduled | active | complete | failed
    error      TEXT,
    result     TEXT NOT NULL,  -- JSON: the shutdown_room object
    created_ts BIGINT NOT NULL,
    updated_ts BIGINT NOT NULL
);
CREATE INDEX room_deletions_by_room ON room_deletions (room_id, created_ts);
