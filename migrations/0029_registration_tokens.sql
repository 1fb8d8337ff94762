-- Registration tokens (the m.login.registration_token UIA stage, registration.require_token;
-- the admin API's /_synapse/admin/v1/registration_tokens).

-- Projections of the moderation chain (projections/admin.py): the tokens admins made,
-- and one row per registration that used one (completed = the rows of a token).
CREATE TABLE registration_tokens (
    token           TEXT PRIMARY KEY,
    uses_allowed    BIGINT,          -- NULL: unlimited
    expiry_time     BIGINT,          -- ms since the epoch; NULL: never
    stream_position BIGINT NOT NULL
);
CREATE TABLE registration_token_uses (
    event_id        TEXT PRIMARY KEY,
    token           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    session_id      TEXT,            -- the UIA session that registered
    stream_position BIGINT NOT NULL
);
CREATE INDEX registration_token_uses_by_token ON registration_token_uses (token, session_id);

-- Not in the log: uses pending in a UIA session (a token checked, the registration
-- not finished yet), so a token is not handed out beyond its uses_allowed. A row
-- counts while its session lives and has not registered (uia_sessions expire).
CREATE TABLE registration_token_pending (
    token      TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (token, session_id)
);
