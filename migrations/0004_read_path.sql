-- The read path: receipts, account data and filters are projections of the
-- account chains (@user); to-device messages are not in the log.

-- Read receipts (m.read, m.read.private), latest per user, room, type and thread.
CREATE TABLE receipts (
    room_id         TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    receipt_type    TEXT NOT NULL,
    thread_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    ts              BIGINT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_by_position ON receipts (room_id, stream_position);

-- Account data, global (room_id = '') and per room, including m.fully_read,
-- tags, m.direct and m.ignored_user_list.
CREATE TABLE account_data (
    user_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    type            TEXT NOT NULL,
    content         TEXT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_position ON account_data (user_id, stream_position);

-- Sync filters uploaded by clients.
CREATE TABLE user_filters (
    user_id   TEXT NOT NULL,
    filter_id TEXT NOT NULL,
    filter    TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- Not in the log: to-device messages are a delivery queue. Each is delivered
-- in the target device's sync and deleted once the device acknowledges it by
-- syncing with a later token; nothing about them needs to be replayed.
CREATE TABLE device_inbox (
    position  BIGSERIAL PRIMARY KEY,
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    sender    TEXT NOT NULL,
    type      TEXT NOT NULL,
    content   TEXT NOT NULL
);
CREATE INDEX device_inbox_by_device ON device_inbox (user_id, device_id, position);

-- Not in the log: to-device transaction IDs, for idempotent sendToDevice.
CREATE TABLE device_inbox_txns (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);
