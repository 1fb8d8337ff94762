-- Server administration (homeserver/admin). Projections of the log
-- (projections/admin.py), from the moderation chain (~moderation:<server>), so
-- `audit replay` rebuilds them.

-- The audit trail: one row per admin action (com.linkchat.admin.action): who
-- (admin_id, the event's sender), what (action), on whom (target), why
-- (reason), when (ts, the event's origin_server_ts), and what else it carried
-- (details, JSON). GET /_linkchat/v1/admin/audit pages it by stream position.
CREATE TABLE admin_actions (
    event_id        TEXT PRIMARY KEY,
    stream_position BIGINT NOT NULL UNIQUE,
    ts              BIGINT NOT NULL,
    admin_id        TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT,
    reason          TEXT,
    details         TEXT
);
CREATE INDEX admin_actions_by_target ON admin_actions (target, stream_position);
CREATE INDEX admin_actions_by_admin ON admin_actions (admin_id, stream_position);

-- Users an admin made a server admin through the admin API (state
-- com.linkchat.admin.server_admin {"admin": true}); the configured `admins` are
-- admins too, but they are config, not in the log.
CREATE TABLE server_admins (
    user_id         TEXT PRIMARY KEY,
    stream_position BIGINT NOT NULL
);
