-- Deactivation and erasure (homeserver/admin/deactivation.py). A deactivation
-- is an edit of the account fact (com.linkchat.account: `deactivated`, and
-- `erased` when the user asked to be forgotten), so `users` stays a projection.
ALTER TABLE users ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX users_erased ON users (user_id) WHERE erased;
