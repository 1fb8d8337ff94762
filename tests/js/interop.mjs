// matrix-js-sdk interop client, driven by tests/test_interop_js_sdk.py.
//
// It logs in with a token the Python test registered, starts the SDK's own sync
// loop (crypto off: no initRustCrypto), waits for PREPARED, creates a room that
// invites the Python test's peer, waits for the peer's message to arrive through
// the SDK's Room.timeline event, replies to it, and exits.
//
// Protocol: every line this script writes for the test starts with "INTEROP " and
// is one JSON object with a "step" key; anything else on stdout is SDK chatter.
// Every HTTP request the SDK makes is reported as {"step": "request", ...}.
// Exit codes: 0 done, 1 SDK error, 2 timed out.

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

const env = (name) => {
    const value = process.env[name];
    if (!value) {
        report({ step: "error", error: `missing environment variable ${name}` });
        process.exit(1);
    }
    return value;
};

function report(line) {
    process.stdout.write(`INTEROP ${JSON.stringify(line)}\n`);
}

// The SDK logs at debug level through console.log; keep stdout for the protocol.
logger.setLevel("warn");

const baseUrl = env("HS_BASE_URL");
const userId = env("HS_USER_ID");
const peerId = env("HS_PEER_ID");
const timeoutMs = Number(process.env.HS_TIMEOUT_MS || "20000");
let stage = "starting";

const timer = setTimeout(() => {
    report({ step: "timeout", stage, after_ms: timeoutMs });
    process.exit(2);
}, timeoutMs);

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

const client = sdk.createClient({
    baseUrl,
    accessToken: env("HS_ACCESS_TOKEN"),
    userId,
    deviceId: env("HS_DEVICE_ID"),
    fetchFn: recordingFetch,
    timelineSupport: true,
});

function fail(error) {
    report({ step: "error", stage, error: String((error && error.stack) || error) });
    client.stopClient();
    process.exit(1);
}

process.on("unhandledRejection", fail);

function waitForSyncState(wanted) {
    return new Promise((resolve, reject) => {
        const onSync = (state, _previous, data) => {
            if (state === wanted) {
                client.off(sdk.ClientEvent.Sync, onSync);
                resolve();
            } else if (state === "ERROR") {
                client.off(sdk.ClientEvent.Sync, onSync);
                reject(new Error(`sync state ERROR: ${data && data.error}`));
            }
        };
        client.on(sdk.ClientEvent.Sync, onSync);
    });
}

function waitForPeerMessage(roomId) {
    return new Promise((resolve) => {
        const onTimeline = (event, room, toStartOfTimeline, removed, data) => {
            if (toStartOfTimeline || removed || !data || !data.liveEvent) return;
            if (!room || room.roomId !== roomId) return;
            if (event.getType() !== "m.room.message" || event.getSender() !== peerId) return;
            client.off(sdk.RoomEvent.Timeline, onTimeline);
            resolve(event);
        };
        client.on(sdk.RoomEvent.Timeline, onTimeline);
    });
}

try {
    stage = "prepared";
    const prepared = waitForSyncState("PREPARED");
    await client.startClient({ initialSyncLimit: 10 });
    await prepared;
    report({ step: "prepared" });

    stage = "create_room";
    const { room_id: roomId } = await client.createRoom({
        name: "js-sdk interop",
        invite: [peerId],
    });
    report({ step: "room_created", room_id: roomId });

    stage = "peer_message";
    const event = await waitForPeerMessage(roomId);
    const room = client.getRoom(roomId);
    report({
        step: "message",
        room_id: roomId,
        event_id: event.getId(),
        sender: event.getSender(),
        body: event.getContent().body,
        room_name: room ? room.name : null,
        members: room ? room.getJoinedMembers().map((m) => m.userId).sort() : [],
    });

    stage = "reply";
    const sent = await client.sendTextMessage(roomId, `echo: ${event.getContent().body}`);
    report({ step: "replied", event_id: sent.event_id });

    client.stopClient();
    clearTimeout(timer);
    report({ step: "done" });
    process.exit(0);
} catch (error) {
    fail(error);
}
