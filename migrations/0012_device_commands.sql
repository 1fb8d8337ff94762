-- Device rooms and their commands (homeserver/device_control, spec/devices.md).
--
-- Projections of the log, rebuilt by homeserver/projections/device_control.py:
-- linkchat_devices from the owners' account chains, the three device_command*
-- tables from the command, result and expiry events of the device rooms.

-- A user's devices: one row per device account, from the
-- `com.linkchat.account.owned_device` fact (state key: the device's user ID)
-- in its owner's chain; gone once the device is retired.
CREATE TABLE linkchat_devices (
    device_user_id  TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    created_ts      BIGINT NOT NULL,
    stream_position BIGINT NOT NULL
);
CREATE INDEX linkchat_devices_by_owner ON linkchat_devices (owner_id, created_ts);
CREATE INDEX linkchat_devices_by_room ON linkchat_devices (room_id);

-- Every command event, as it was sent (those of device rooms were checked by
-- the rules; outside device rooms the type is carried untouched, and readers
-- only ever look at device rooms). `args` is canonical JSON; `expires_ts` =
-- the event's origin_server_ts + ttl_ms.
CREATE TABLE device_commands (
    command_id      TEXT PRIMARY KEY,   -- the command's event ID
    room_id         TEXT NOT NULL,
    sender          TEXT NOT NULL,
    action          TEXT NOT NULL,
    args            TEXT NOT NULL,
    ttl_ms          BIGINT NOT NULL,
    sent_ts         BIGINT NOT NULL,
    expires_ts      BIGINT NOT NULL,
    stream_position BIGINT NOT NULL
);
CREATE INDEX device_commands_by_room ON device_commands (room_id, stream_position);

-- The latest status of each command: pending (the command itself), the status
-- of its latest result, or expired. `event_id` is the event that set it.
-- Keyed by room too: the device types are carried untouched outside device
-- rooms (no rules there), so a "result" sent in another room naming a command
-- makes a row of that other room, which no query joins with the command.
CREATE TABLE device_command_status (
    room_id         TEXT NOT NULL,
    command_id      TEXT NOT NULL,
    status          TEXT NOT NULL,  -- pending | accepted | running | succeeded | failed | rejected | expired
    event_id        TEXT NOT NULL,
    updated_ts      BIGINT NOT NULL,
    stream_position BIGINT NOT NULL,
    PRIMARY KEY (room_id, command_id)
);
CREATE INDEX device_command_status_by_command ON device_command_status (command_id);
-- The commands the expiry task watches: those nobody finished yet.
CREATE INDEX device_command_status_open ON device_command_status (room_id, command_id)
    WHERE status IN ('pending', 'accepted', 'running');

-- Every result and expiry of a command, in log order.
CREATE TABLE device_command_results (
    event_id        TEXT PRIMARY KEY,
    command_id      TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    sender          TEXT NOT NULL,
    status          TEXT NOT NULL,
    output          TEXT,               -- canonical JSON, when the result has one
    error           TEXT,
    ts              BIGINT NOT NULL,
    stream_position BIGINT NOT NULL
);
CREATE INDEX device_command_results_by_command
    ON device_command_results (command_id, room_id, stream_position);

-- Not in the log: secrets. Single-use login tokens (m.login.token) a device
-- agent exchanges for an access token, stored as sha256 of the token like
-- access tokens. Short-lived; losing them only means asking for a new one.
CREATE TABLE login_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    expires_ts  BIGINT NOT NULL
);
CREATE INDEX login_tokens_by_user ON login_tokens (user_id);
