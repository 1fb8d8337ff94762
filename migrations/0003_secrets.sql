-- Not in the log: secrets. Password hashes and access tokens must never be
-- part of an exportable, replayable log. Losing them logs everybody out; it
-- loses no history.
CREATE TABLE user_passwords (
    user_id       TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);

-- Access tokens, stored as sha256 of the token (the token itself is never stored).
CREATE TABLE access_tokens (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    created_ts   BIGINT NOT NULL
);
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);

-- Not in the log: user-interactive auth sessions, short-lived and shared by
-- all processes so a client may continue a flow on any of them.
CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    created_ts BIGINT NOT NULL,
    completed  TEXT[] NOT NULL DEFAULT '{}',
    params     TEXT NOT NULL DEFAULT '{}'
);
