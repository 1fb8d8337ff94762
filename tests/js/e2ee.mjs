// One matrix-js-sdk device with its Rust crypto, driven by tests/test_interop_js_e2ee.py.
//
// Each device runs in a process of its own (the Rust crypto store is one IndexedDB per
// process, here fake-indexeddb in memory), as each app would. It logs in with the
// password it is given (a new device every time), then reads one JSON command per line
// on stdin and answers each with a line on stdout:
//   INTEROP {"step": "<command>", ...}            the command's result
//   INTEROP {"step": "error", "stage", "error"}   it failed (the process exits 1)
//   INTEROP {"step": "request", method, path, status, body?}   an HTTP request the SDK made
// Anything else on stdout is SDK chatter.

import "fake-indexeddb/auto";
import { createInterface } from "node:readline";

import * as sdk from "matrix-js-sdk";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/recovery-key.js";
import { logger } from "matrix-js-sdk/lib/logger.js";

function report(line) {
    process.stdout.write(`INTEROP ${JSON.stringify(line)}\n`);
}

logger.setLevel(process.env.HS_SDK_LOG_LEVEL || "warn");

const env = (name) => {
    const value = process.env[name];
    if (!value) {
        report({ step: "error", stage: "env", error: `missing environment variable ${name}` });
        process.exit(1);
    }
    return value;
};

const baseUrl = env("HS_BASE_URL");
const userId = env("HS_USER_ID");
const password = env("HS_PASSWORD");
const stepTimeoutMs = Number(process.env.HS_STEP_TIMEOUT_MS || "25000");
let stage = "starting";
let client = null;
// The secret storage key this device created or was given (the user's recovery key).
let secretStorageKey = null;

async function recordingFetch(input, init) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init && init.method) || "GET";
    const response = await fetch(input, init);
    let body;
    if (response.status >= 400) {
        body = await response.clone().text();
    }
    report({ step: "request", method, path: decodeURIComponent(url.pathname), status: response.status, body });
    return response;
}

function fail(error) {
    report({ step: "error", stage, error: String((error && error.stack) || error) });
    if (client) client.stopClient();
    process.exit(1);
}

process.on("unhandledRejection", fail);

async function until(what, check, timeoutMs = stepTimeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const found = await check();
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

const cryptoCallbacks = {
    getSecretStorageKey: async ({ keys }) => {
        if (!secretStorageKey) return null;
        const keyId = (await client.secretStorage.getDefaultKeyId()) || Object.keys(keys)[0];
        return keys[keyId] ? [keyId, secretStorageKey] : null;
    },
    cacheSecretStorageKey: (_keyId, _keyInfo, key) => {
        secretStorageKey = key;
    },
};

const uiaPassword = async (makeRequest) => {
    try {
        await makeRequest(null);
    } catch (error) {
        if (!error.data || !error.data.flows) throw error;
        await makeRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: userId },
            password,
            session: error.data.session,
        });
    }
};

async function start() {
    const login = sdk.createClient({ baseUrl, fetchFn: recordingFetch });
    const session = await login.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
        initial_device_display_name: process.env.HS_DEVICE_NAME || "js-sdk e2ee",
    });
    client = sdk.createClient({
        baseUrl,
        accessToken: session.access_token,
        userId,
        deviceId: session.device_id,
        fetchFn: recordingFetch,
        cryptoCallbacks,
        timelineSupport: true,
    });
    await client.initRustCrypto();
    const prepared = new Promise((resolve, reject) => {
        const onSync = (state, _previous, data) => {
            if (state === "PREPARED") {
                client.off(sdk.ClientEvent.Sync, onSync);
                resolve();
            } else if (state === "ERROR") {
                reject(new Error(`sync state ERROR: ${data && data.error}`));
            }
        };
        client.on(sdk.ClientEvent.Sync, onSync);
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
    return { device_id: session.device_id };
}

// The decrypted message from `sender` with `body` in the room, as the SDK shows it.
async function decryptedMessage(roomId, sender, body) {
    return until(`the message "${body}" from ${sender}`, async () => {
        const room = client.getRoom(roomId);
        if (!room) return null;
        for (const event of room.getLiveTimeline().getEvents()) {
            if (event.getSender() !== sender || !event.isEncrypted()) continue;
            await client.decryptEventIfNeeded(event);
            if (event.isDecryptionFailure()) continue;
            if (event.getType() === "m.room.message" && event.getContent().body === body) {
                return { event_id: event.getId(), body: event.getContent().body, encrypted: true };
            }
        }
        return null;
    });
}

const commands = {
    start,

    async bootstrap_cross_signing() {
        const crypto = client.getCrypto();
        await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: uiaPassword });
        const status = await crypto.getCrossSigningStatus();
        return { status, ready: await crypto.isCrossSigningReady() };
    },

    async bootstrap_backup() {
        const crypto = client.getCrypto();
        let recoveryKey = null;
        await crypto.bootstrapSecretStorage({
            createSecretStorageKey: async () => {
                const created = await crypto.createRecoveryKeyFromPassphrase();
                recoveryKey = created.encodedPrivateKey;
                return created;
            },
            setupNewSecretStorage: true,
            setupNewKeyBackup: true,
        });
        const version = await until("an active backup", () => crypto.getActiveSessionBackupVersion());
        return { recovery_key: recoveryKey, version };
    },

    async create_encrypted_room({ name, invite }) {
        const { room_id: roomId } = await client.createRoom({
            name,
            invite,
            initial_state: [
                { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
            ],
        });
        await until("the room in the SDK", () => client.getRoom(roomId));
        return { room_id: roomId };
    },

    async join({ room_id: roomId }) {
        await until("the invite", () => client.getRoom(roomId));
        await client.joinRoom(roomId);
        return { room_id: roomId };
    },

    async wait_member({ room_id: roomId, user_id: member }) {
        await until(`${member} joined`, () => {
            const room = client.getRoom(roomId);
            return room && room.getMember(member) && room.getMember(member).membership === "join";
        });
        const encrypted = await client.getCrypto().isEncryptionEnabledInRoom(roomId);
        return { encrypted };
    },

    async send({ room_id: roomId, body }) {
        const sent = await client.sendTextMessage(roomId, body);
        const raw = await client.fetchRoomEvent(roomId, sent.event_id);
        return { event_id: sent.event_id, type_on_server: raw.type, content_on_server: raw.content };
    },

    async wait_message({ room_id: roomId, sender, body }) {
        return decryptedMessage(roomId, sender, body);
    },

    async identity({ user_id: other }) {
        const crypto = client.getCrypto();
        const known = await until(`${other}'s cross-signing keys`, () =>
            crypto.userHasCrossSigningKeys(other, true),
        );
        const devices = await crypto.getUserDeviceInfo([other], true);
        const status = await crypto.getUserVerificationStatus(other);
        return {
            has_cross_signing_keys: known,
            devices: [...(devices.get(other) || new Map()).keys()].sort(),
            cross_signing_verified: status.isCrossSigningVerified(),
        };
    },

    async wait_backed_up({ count }) {
        const info = await until(`${count} keys in the backup`, async () => {
            const found = await client.http.authedRequest(sdk.Method.Get, "/room_keys/version");
            return found && found.count >= count ? found : null;
        });
        return { version: info.version, count: info.count };
    },

    async restore_backup({ recovery_key: recoveryKey }) {
        const crypto = client.getCrypto();
        secretStorageKey = decodeRecoveryKey(recoveryKey);
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        await crypto.checkKeyBackupAndEnable();
        const result = await crypto.restoreKeyBackup();
        return { total: result.total, imported: result.imported };
    },

    async read_history({ room_id: roomId, event_id: eventId }) {
        const raw = await client.fetchRoomEvent(roomId, eventId);
        const event = client.getEventMapper()(raw);
        await client.decryptEventIfNeeded(event);
        return {
            type: event.getType(),
            body: event.getContent().body,
            failure: event.isDecryptionFailure(),
        };
    },

    async stop() {
        client.stopClient();
        setTimeout(() => process.exit(0), 10);
        return {};
    },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    stage = command.cmd;
    try {
        const result = await commands[command.cmd](command);
        report({ step: command.cmd, ...result });
    } catch (error) {
        fail(error);
    }
}
