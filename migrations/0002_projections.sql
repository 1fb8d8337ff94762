-- Projections: every table here is rebuilt from the event log by the reducers
-- in homeserver/projections (the live server applies them in the append
-- transaction; `audit replay` applies the same functions from position 0).

-- The last event of each chain, from which the next event is chained.
CREATE TABLE chain_heads (
    room_id         TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL,
    depth           BIGINT NOT NULL,
    stream_position BIGINT NOT NULL
);

-- Rooms, from their m.room.create event.
CREATE TABLE rooms (
    room_id         TEXT PRIMARY KEY,
    creator         TEXT NOT NULL,
    room_version    TEXT NOT NULL,
    room_type       TEXT,
    stream_position BIGINT NOT NULL
);

-- Current state of every chain: (type, state_key) -> the event that set it.
CREATE TABLE current_state (
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Room membership, from m.room.member state.
CREATE TABLE room_members (
    room_id         TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    membership      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id, membership);

-- Redactions: which event redacted which (the first redaction wins).
CREATE TABLE redactions (
    redacts      TEXT PRIMARY KEY,
    redaction_id TEXT NOT NULL
);

-- Relations (m.relates_to): edits, reactions, threads, replies and our own.
CREATE TABLE event_relations (
    event_id  TEXT PRIMARY KEY,
    room_id   TEXT NOT NULL,
    relates_to TEXT NOT NULL,
    rel_type  TEXT NOT NULL,
    type      TEXT NOT NULL,
    sender    TEXT NOT NULL,
    aggregation_key TEXT
);
CREATE INDEX event_relations_target ON event_relations (relates_to, rel_type);

-- Room aliases, from the alias chains (#alias:server).
CREATE TABLE room_aliases (
    alias   TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

-- User accounts, from the account chains (@user:server).
CREATE TABLE users (
    user_id     TEXT PRIMARY KEY,
    created_ts  BIGINT NOT NULL,
    deactivated BOOLEAN NOT NULL DEFAULT FALSE,
    kind        TEXT NOT NULL DEFAULT 'user'
);

-- Devices of each account (their access tokens are secrets, kept apart).
CREATE TABLE devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    display_name TEXT,
    created_ts   BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Rooms a user has forgotten (Matrix `forget`), from the account chains.
CREATE TABLE forgotten_rooms (
    user_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
