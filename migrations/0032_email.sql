-- Email addresses (homeserver/email). An address is personal data and the log is
-- append-only, so the log never holds one: it holds a keyed hash of it (HMAC-SHA256
-- under a server secret), and the address itself sits in a secret table whose row is
-- deleted when the owner removes the address or the account is erased. Deleting it
-- leaves the log, its hashes and signatures untouched: `audit verify` and
-- `audit replay` still pass. See README, "Email addresses and erasure".

-- The admin API's table of 0023 held addresses outside the log until this capability
-- landed. Kept under another name until the server, at start-up, has moved each row
-- into the log (a binding fact) and the secret table below (email/service.py,
-- adopt_admin_threepids), deleting it as it goes.
ALTER TABLE user_threepids RENAME TO admin_threepids_before_email;
ALTER INDEX user_threepids_by_user RENAME TO admin_threepids_before_email_by_user;

-- Not in the log: the server's own secrets, made once and shared by every process
-- (the key of the address hashes).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Projection of com.linkchat.account.threepid facts (projections/threepids.py): which
-- account holds which address hash (the hash covers the medium). One account per
-- address is decided under the append lock (email/rules.py).
CREATE TABLE user_threepids (
    user_id         TEXT NOT NULL,
    address_hash    TEXT NOT NULL,
    medium          TEXT NOT NULL,
    validated_ts    BIGINT NOT NULL,
    added_ts        BIGINT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (user_id, address_hash)
);
CREATE INDEX user_threepids_by_address ON user_threepids (address_hash);

-- Not in the log (secret, erasable): the address behind each hash of user_threepids.
-- kept_ts: a row kept for a binding about to be appended is not swept as unbound.
CREATE TABLE threepid_addresses (
    medium       TEXT NOT NULL,
    address_hash TEXT NOT NULL,
    address      TEXT NOT NULL,
    kept_ts      BIGINT NOT NULL,
    PRIMARY KEY (medium, address_hash)
);

-- Not in the log (secret, short-lived): validation sessions of /requestToken. The
-- token is stored as its sha256 and cleared when used; rows are deleted a day after
-- they were made, and at once when their address is erased.
CREATE TABLE threepid_validations (
    sid              TEXT PRIMARY KEY,
    client_secret    TEXT NOT NULL,
    medium           TEXT NOT NULL,
    address          TEXT NOT NULL,
    address_hash     TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    send_attempt     BIGINT NOT NULL,
    next_link        TEXT,
    token_hash       TEXT,
    token_expires_ts BIGINT NOT NULL,
    failed_attempts  INTEGER NOT NULL DEFAULT 0,
    validated_ts     BIGINT,
    created_ts       BIGINT NOT NULL,
    UNIQUE (client_secret, medium, address_hash, purpose)
);
CREATE INDEX threepid_validations_by_address ON threepid_validations (medium, address_hash);
CREATE INDEX threepid_validations_by_age ON threepid_validations (created_ts);
