-- Reports of events, rooms and users (homeserver/moderation). Projections of the
-- report facts of the moderation chain (projections/reports.py), so `audit
-- replay` rebuilds them; an admin's deletion fact removes a row. `id` is the
-- report fact's stream position, `user_id` the reporter, `received_ts` the
-- fact's origin_server_ts. Read only by the admin API.

CREATE TABLE event_reports (
    id          BIGINT PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    room_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    reason      TEXT,
    score       INTEGER
);
CREATE INDEX event_reports_by_room ON event_reports (room_id, id);
CREATE INDEX event_reports_by_reporter ON event_reports (user_id, id);

CREATE TABLE room_reports (
    id          BIGINT PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX room_reports_by_room ON room_reports (room_id, id);

CREATE TABLE user_reports (
    id             BIGINT PRIMARY KEY,
    received_ts    BIGINT NOT NULL,
    target_user_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    reason         TEXT
);
CREATE INDEX user_reports_by_target ON user_reports (target_user_id, id);
