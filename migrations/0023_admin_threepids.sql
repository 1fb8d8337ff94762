-- Third-party IDs (email addresses, phone numbers) of accounts, as a server admin
-- sets them through PUT /_synapse/admin/v2/users/{userId} (`threepids`).
-- Not in the log, for now: an address is personal data that must be erasable,
-- and the log is append-only. The email capability (issue 16) decides how the
-- log refers to an address and takes this table over; homeserver/admin/threepids.py
-- is the one place that reads and writes it. One account per address.
CREATE TABLE user_threepids (
    medium       TEXT NOT NULL,   -- email or msisdn
    address      TEXT NOT NULL,   -- canonical: an email address in lower case
    user_id      TEXT NOT NULL,
    added_at     BIGINT NOT NULL,
    validated_at BIGINT NOT NULL,
    PRIMARY KEY (medium, address)
);
CREATE INDEX user_threepids_by_user ON user_threepids (user_id);
