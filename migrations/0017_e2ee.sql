-- End-to-end encryption (homeserver/e2ee). The server never holds a secret key
-- or a plaintext: it stores and relays the public keys, signatures and
-- encrypted backups that clients publish.

-- Projections of the log (projections/e2ee.py), from the E2EE facts in each
-- owner's account chain, so an auditor sees when a device's keys changed.

-- A device's identity keys, as the device uploaded and signed them.
CREATE TABLE e2e_device_keys (
    user_id         TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    key_json        TEXT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Cross-signing keys: usage is master, self_signing or user_signing.
CREATE TABLE e2e_cross_signing_keys (
    user_id         TEXT NOT NULL,
    usage           TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    key_json        TEXT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded apart from the keys they sign (POST /keys/signatures/upload):
-- signer's key key_id signed the target's device or cross-signing key.
CREATE TABLE e2e_signatures (
    signer_id       TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    target_user_id  TEXT NOT NULL,
    target_key_id   TEXT NOT NULL,
    signature       TEXT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (signer_id, key_id, target_user_id, target_key_id)
);
CREATE INDEX e2e_signatures_by_target ON e2e_signatures (target_user_id, target_key_id);

-- Per user, the position of the latest change of their devices, device keys,
-- cross-signing keys or signatures on them: "who changed after P" for sync's
-- device_lists and /keys/changes is a range of this index.
CREATE TABLE device_list_changes (
    user_id         TEXT PRIMARY KEY,
    stream_position BIGINT NOT NULL
);
CREATE INDEX device_list_changes_by_position ON device_list_changes (stream_position);

-- Not in the log: one-time keys. Each is handed out once (POST /keys/claim
-- deletes it in the claiming transaction) and is worth nothing after: a
-- consumable supply, like the to-device queue, not a fact anyone replays.
-- uploaded_ts: a key uploaded before its device (ID) was last created belongs
-- to a device that was deleted, and is never handed out.
CREATE TABLE e2e_one_time_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    key_json    TEXT NOT NULL,
    uploaded_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- Not in the log, for the same reason: a device's fallback key per algorithm,
-- handed out when its one-time keys run out and then marked used (which sync
-- tells the device, so it uploads another).
CREATE TABLE e2e_fallback_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    key_json    TEXT NOT NULL,
    used        BOOLEAN NOT NULL,
    uploaded_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Not in the log: server-side key backup (/room_keys). Encrypted by the client
-- for itself, large (a session per room and sender, each rewritten when a
-- better copy arrives) and deleted on request: DELETE /room_keys/version must
-- really forget the keys, which an append-only log cannot. A version and its
-- keys change together in one transaction (etag, count, wrong-version errors).
-- Versions are never reused: a deleted one stays, marked, so its number is not
-- handed out again.
CREATE TABLE room_key_backup_versions (
    user_id   TEXT NOT NULL,
    version   BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag      BIGINT NOT NULL DEFAULT 0,
    deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE room_key_backup_keys (
    user_id             TEXT NOT NULL,
    version             BIGINT NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count     BIGINT NOT NULL,
    is_verified         BOOLEAN NOT NULL,
    session_data        TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
