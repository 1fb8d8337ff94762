-- Not in the log: user-interactive auth sessions (0003), which now remember what
-- a client may leave out of the later requests of a session (issue 14, item 9):
--   operation  the request's method and path; it cannot change within a session
--   user_id    who started it (an authenticated operation), NULL for registration
--   params     the parameters of the requests so far (JSON; never a plaintext password)
--   results    each completed stage's result, by stage type (the user a password
--              named, the address an email proved)
--   data       what the server remembers for the operation (a password's hash, the
--              user a registration created, so a retry returns the same account)
ALTER TABLE uia_sessions
    ADD COLUMN operation TEXT NOT NULL DEFAULT '',
    ADD COLUMN user_id TEXT,
    ADD COLUMN results JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN data JSONB NOT NULL DEFAULT '{}',
    DROP COLUMN completed,
    ALTER COLUMN params DROP DEFAULT,
    ALTER COLUMN params TYPE JSONB USING params::jsonb,
    ALTER COLUMN params SET DEFAULT '{}';
CREATE INDEX uia_sessions_by_age ON uia_sessions (created_ts);
