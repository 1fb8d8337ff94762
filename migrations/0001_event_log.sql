-- The event log: the single source of truth. Append-only, enforced below.
-- `room_id` names the chain: a room (!), a user account (@) or an alias (#).
-- `json` is the canonical JSON of the signed event exactly as accepted (without
-- event_id, which is derived from it); hashes and signatures depend on those bytes.
CREATE TABLE events (
    stream_position  BIGINT PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    room_id          TEXT NOT NULL,
    type             TEXT NOT NULL,
    state_key        TEXT,
    sender           TEXT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    depth            BIGINT NOT NULL,
    json             TEXT NOT NULL
);
CREATE INDEX events_room_position ON events (room_id, stream_position);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP;
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Not in the log: the de-duplication index of client transaction IDs. It is
-- written in the append transaction so a retried PUT returns the same event.
CREATE TABLE event_txn_ids (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);
