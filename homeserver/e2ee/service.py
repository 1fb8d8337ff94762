"""End-to-end encryption keys: upload, query, claim, changes, cross-signing and signatures.

The server never decrypts anything: it stores and relays what clients publish.
Identity keys, cross-signing keys and signatures are facts in their owner's
account chain (events/content/e2ee.py), so the log shows when a device's keys
changed; one-time and fallback keys are a supply outside the log
(store/one_time_keys.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.accounts.service import AccountService, Requester
from homeserver.batching import Batched
from homeserver.bus.base import Bus
from homeserver.clock import now_ms
from homeserver.e2ee.signatures import is_signed_by, signable
from homeserver.errors import MatrixError, bad_json, missing_param
from homeserver.events import types
from homeserver.events.canonical import decode, encode
from homeserver.events.content.e2ee import (
    MAX_SIGNATURES_PER_FACT,
    CrossSigningKey,
    DeviceKeys,
)
from homeserver.events.model import Draft, JsonDict
from homeserver.log.appender import Appender
from homeserver.store import e2ee_keys as key_store
from homeserver.store import events as event_store
from homeserver.store import one_time_keys as otk_store
from homeserver.sync.notifier import Notifier
from homeserver.sync.tokens import parse_pagination_token

# Bus channel: "user\tdevice" pairs, newline-separated, whose one-time key counts changed.
KEY_COUNTS_CHANGED = "e2ee.key_counts"
# Some clients read a missing signed_curve25519 count as "the server cannot count":
# it is always sent, 0 when there are none (as Synapse does).
ALWAYS_COUNTED = "signed_curve25519"
COUNTS_CACHE_SIZE = 100_000
USAGES = ("master", "self_signing", "user_signing")


def invalid_signature(reason: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_SIGNATURE", reason)


def _split_key_id(name: str, what: str) -> tuple[str, str]:
    algorithm, sep, key_id = name.partition(":")
    if not sep or not algorithm or not key_id or ":" in key_id:
        raise bad_json(f"Invalid {what} key {name[:100]!r}: expected <algorithm>:<key_id>.")
    return algorithm, key_id


def _check_key_value(value: object, name: str) -> None:
    if not isinstance(value, str | dict):
        raise bad_json(f"The key {name[:100]!r} must be a string or a key object.")


class KeyCounts:
    """Per device, its one-time key counts and unused fallback key types, as every sync
    sends them; read once and kept until an upload or a claim (in any process, told on
    the bus) changes them, or a change naming the user (a device deleted and made anew
    among them) moves their notifier generation on. The reads of syncs woken together
    (a to-device send to many devices names all their users) share one query."""

    def __init__(self, pool: asyncpg.Pool, bus: Bus, notifier: Notifier) -> None:
        self._pool = pool
        self._bus = bus
        self._notifier = notifier
        self._kept: dict[tuple[str, str], tuple[int, dict[str, int], list[str]]] = {}
        # Bumped per device on every change: a read that began before one is not kept.
        self._changes: dict[tuple[str, str], int] = {}
        self._reads: Batched[tuple[str, str], tuple[dict[str, int], list[str]]] = Batched(
            self._read
        )
        bus.subscribe(KEY_COUNTS_CHANGED, self._on_bus_message)

    async def counts(self, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
        key = (user_id, device_id)
        generation = self._notifier.generation(user_id)
        kept = self._kept.get(key)
        if kept is not None and kept[0] == generation:
            return kept[1], kept[2]
        before = self._changes.get(key, 0)
        counts, fallback = await self._reads.ask(key)
        counts = {ALWAYS_COUNTED: 0, **counts}
        if self._changes.get(key, 0) == before:
            self._kept[key] = (generation, counts, fallback)
            while len(self._kept) > COUNTS_CACHE_SIZE:
                self._kept.pop(next(iter(self._kept)))
        return counts, fallback

    async def _read(self, devices: list[tuple[str, str]]) -> list[tuple[dict[str, int], list[str]]]:
        async with self._pool.acquire() as conn:
            return await otk_store.key_counts_many(conn, devices)

    async def changed(self, devices: Sequence[tuple[str, str]]) -> None:
        if not devices:
            return
        self._forget(devices)
        await self._bus.publish(
            KEY_COUNTS_CHANGED, "\n".join(f"{user}\t{device}" for user, device in devices)
        )

    def _forget(self, devices: Sequence[tuple[str, str]]) -> None:
        for key in devices:
            self._kept.pop(key, None)
            self._changes[key] = self._changes.get(key, 0) + 1

    def _on_bus_message(self, message: str) -> None:
        devices = [tuple(line.split("\t", 1)) for line in message.split("\n") if "\t" in line]
        self._forget([(user, device) for user, device in devices])


@dataclass(eq=False)
class KeyService:
    pool: asyncpg.Pool
    appender: Appender
    accounts: AccountService
    counts: KeyCounts

    # POST /keys/upload

    async def upload(self, requester: Requester, body: Mapping[str, Any]) -> JsonDict:
        user_id, device_id = requester.user_id, requester.device_id
        device_keys = body.get("device_keys")
        one_time_keys = body.get("one_time_keys")
        one_time_keys = {} if one_time_keys is None else one_time_keys
        fallback_keys = body.get("fallback_keys")
        fallback_keys = {} if fallback_keys is None else fallback_keys
        if not isinstance(one_time_keys, dict) or not isinstance(fallback_keys, dict):
            raise bad_json("one_time_keys and fallback_keys must be objects.")
        otks = []
        for name, value in one_time_keys.items():
            algorithm, key_id = _split_key_id(name, "one-time")
            _check_key_value(value, name)
            otks.append((algorithm, key_id, encode(value).decode()))
        fallbacks: dict[str, tuple[str, str]] = {}
        for name, value in fallback_keys.items():
            algorithm, key_id = _split_key_id(name, "fallback")
            _check_key_value(value, name)
            if algorithm in fallbacks:
                raise bad_json(
                    f"Only one fallback key per algorithm may be uploaded ({algorithm})."
                )
            fallbacks[algorithm] = (key_id, encode(value).decode())
        if device_keys is not None:
            await self._publish_device_keys(user_id, device_id, device_keys)
        now = now_ms()
        async with self.pool.acquire() as conn, conn.transaction():
            await otk_store.forget_stale_keys(conn, user_id, device_id)
            held = await otk_store.existing_one_time_keys(
                conn, user_id, device_id, [(a, k) for a, k, _ in otks]
            )
            for algorithm, key_id, key_json in otks:
                old = held.get((algorithm, key_id))
                if old is not None and old != key_json:
                    raise MatrixError(
                        400,
                        "M_UNKNOWN",
                        f"One time key {algorithm}:{key_id} already exists with another value.",
                    )
            await otk_store.add_one_time_keys(
                conn,
                user_id,
                device_id,
                [k for k in otks if (k[0], k[1]) not in held],
                now,
            )
            for algorithm, (key_id, key_json) in fallbacks.items():
                await otk_store.set_fallback_key(
                    conn, user_id, device_id, algorithm, key_id, key_json, now
                )
        if otks or fallbacks:
            await self.counts.changed([(user_id, device_id)])
        counts, _ = await self.counts.counts(user_id, device_id)
        return {"one_time_key_counts": counts}

    async def _publish_device_keys(self, user_id: str, device_id: str, value: object) -> None:
        if not isinstance(value, dict):
            raise bad_json("device_keys must be an object.")
        keys = DeviceKeys.model_validate(value)
        if keys.user_id != user_id:
            raise bad_json("user_id in device_keys does not match the authenticated user.")
        if keys.device_id != device_id:
            raise bad_json("device_id in device_keys does not match the authenticated device.")
        key_id = f"ed25519:{device_id}"
        public = keys.keys.get(key_id)
        if public is None or not is_signed_by(value, user_id, key_id, public):
            raise invalid_signature(f"device_keys must be signed by the device's key {key_id}.")
        async with self.pool.acquire() as conn:
            current = await key_store.device_key_json(conn, user_id, device_id)
        if current is not None and current == encode(value).decode():
            return  # the same keys again: nothing changed, no fact
        await self.appender.append(
            Draft(
                user_id,
                user_id,
                types.E2EE_DEVICE_KEYS,
                {"device_keys": value},
                state_key=device_id,
            )
        )

    # POST /keys/query

    async def query(self, requester: Requester, wanted: Mapping[str, Sequence[str]]) -> JsonDict:
        user_ids = [user_id for user_id in wanted if types.is_user_id(user_id)]
        async with self.pool.acquire() as conn:
            rows = await key_store.device_keys(conn, user_ids)
            cross = await key_store.cross_signing_keys(conn, user_ids)
            extra = await key_store.signatures_on(conn, user_ids, requester.user_id)
        signatures: dict[tuple[str, str], list[key_store.SignatureRow]] = {}
        for signature in extra:
            signatures.setdefault((signature.target_user_id, signature.target_key_id), []).append(
                signature
            )
        device_keys: dict[str, dict[str, JsonDict]] = {user_id: {} for user_id in user_ids}
        for row in rows:
            asked = wanted[row.user_id]
            if asked and row.device_id not in asked:
                continue
            served: JsonDict = decode(row.key_json)
            _add_signatures(served, signatures.get((row.user_id, row.device_id), []))
            unsigned = dict(served.get("unsigned") or {})
            if row.display_name is not None:
                unsigned["device_display_name"] = row.display_name
            served["unsigned"] = unsigned
            device_keys[row.user_id][row.device_id] = served
        body: JsonDict = {
            "device_keys": device_keys,
            "failures": {},
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
        }
        for user_id, keys in cross.items():
            for usage, key_json in keys.items():
                if usage == "user_signing" and user_id != requester.user_id:
                    continue  # only its owner sees a user-signing key
                served = decode(key_json)
                public = CrossSigningKey.model_validate(served).public_key
                _add_signatures(served, signatures.get((user_id, public), []))
                body[f"{usage}_keys"][user_id] = served
        return body

    # POST /keys/claim

    async def claim(self, wanted: Mapping[str, Mapping[str, str]]) -> JsonDict:
        user_ids = [user_id for user_id in wanted if types.is_user_id(user_id)]
        async with self.pool.acquire() as conn:
            known = await key_store.devices_of(conn, user_ids)
        failures: dict[str, dict[str, JsonDict]] = {}
        asked: list[tuple[str, str, str]] = []
        for user_id, by_device in wanted.items():
            for device_id, algorithm in by_device.items():
                if (user_id, device_id) not in known:
                    failures.setdefault(user_id, {})[device_id] = {
                        "errcode": "M_NOT_FOUND",
                        "error": f"Unknown device {device_id} of {user_id}.",
                    }
                    continue
                asked.append((user_id, device_id, algorithm))
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await otk_store.claim(conn, asked)
        one_time_keys: dict[str, dict[str, JsonDict]] = {}
        for key in claimed:
            one_time_keys.setdefault(key.user_id, {}).setdefault(key.device_id, {})[
                f"{key.algorithm}:{key.key_id}"
            ] = decode(key.key_json)
        await self.counts.changed(list(dict.fromkeys((k.user_id, k.device_id) for k in claimed)))
        return {"one_time_keys": one_time_keys, "failures": failures}

    # GET /keys/changes

    async def changes(
        self, requester: Requester, from_token: str, to_token: str | None
    ) -> JsonDict:
        after = parse_pagination_token(from_token)
        async with self.pool.acquire() as conn:
            upto = (
                parse_pagination_token(to_token)
                if to_token is not None
                else await event_store.last_position(conn)
            )
            changed, left = await device_list_changes(conn, requester.user_id, after, upto)
        return {"changed": sorted(changed), "left": sorted(left)}

    # Cross-signing

    async def upload_cross_signing_keys(
        self, requester: Requester, body: Mapping[str, Any], auth: object
    ) -> None:
        """POST /keys/device_signing/upload: UIA unless it is the account's first master
        key (as Synapse), or the very keys already published."""
        user_id = requester.user_id
        given: dict[str, JsonDict] = {}
        for usage in USAGES:
            value = body.get(f"{usage}_key")
            if value is None:
                continue
            if not isinstance(value, dict):
                raise bad_json(f"{usage}_key must be an object.")
            given[usage] = value
        async with self.pool.acquire() as conn:
            existing = (await key_store.cross_signing_keys(conn, [user_id])).get(user_id, {})
        if "master" in existing:
            if all(existing.get(u) == encode(v).decode() for u, v in given.items()):
                return
            await self.accounts.require_password(
                requester, "POST /keys/device_signing/upload", auth
            )
        if not given:
            return
        models = {
            usage: _cross_signing_key(value, user_id, usage) for usage, value in given.items()
        }
        master = models.get("master")
        if master is None:
            if "master" not in existing:
                raise missing_param("A master key must be uploaded with the other keys.")
            master = CrossSigningKey.model_validate(decode(existing["master"]))
        for usage in ("self_signing", "user_signing"):
            if usage in given and not is_signed_by(
                given[usage], user_id, master.key_id, master.public_key
            ):
                raise invalid_signature(f"The {usage} key must be signed by the master key.")
        drafts = [
            Draft(user_id, user_id, types.E2EE_CROSS_SIGNING_KEY, {"key": value}, state_key=usage)
            for usage, value in given.items()
            if existing.get(usage) != encode(value).decode()
        ]
        if drafts:
            await self.appender.append_group(drafts)

    async def upload_signatures(self, requester: Requester, body: Mapping[str, Any]) -> JsonDict:
        """POST /keys/signatures/upload: {user ID: {key ID: signed object}}; what cannot be
        accepted is reported per key in `failures`, the rest is recorded."""
        user_id = requester.user_id
        targets = [t for t in body if isinstance(t, str) and types.is_user_id(t)]
        async with self.pool.acquire() as conn:
            cross = await key_store.cross_signing_keys(conn, [user_id, *targets])
            devices = {
                row.device_id: decode(row.key_json)
                for row in await key_store.device_keys(conn, [user_id])
            }
        mine = {usage: decode(value) for usage, value in cross.get(user_id, {}).items()}
        failures: dict[str, dict[str, JsonDict]] = {}
        accepted: list[JsonDict] = []
        for target, by_key in body.items():
            if not isinstance(by_key, dict):
                failures[str(target)] = {"": _failure("M_BAD_JSON", "Expected an object of keys.")}
                continue
            for key_id, signed in by_key.items():
                try:
                    if not isinstance(signed, dict):
                        raise bad_json("A signed key object is required.")
                    if target == user_id:
                        found = self._own_signatures(user_id, key_id, signed, mine, devices)
                    else:
                        theirs = cross.get(target, {}).get("master")
                        found = self._signatures_of_other(
                            user_id, target, key_id, signed, mine, theirs
                        )
                except MatrixError as error:
                    failures.setdefault(target, {})[key_id] = _failure(error.errcode, error.error)
                    continue
                accepted.extend(found)
        for start in range(0, len(accepted), MAX_SIGNATURES_PER_FACT):
            chunk = accepted[start : start + MAX_SIGNATURES_PER_FACT]
            await self.appender.append(
                Draft(user_id, user_id, types.E2EE_SIGNATURES, {"signatures": chunk})
            )
        return {"failures": failures}

    def _own_signatures(
        self,
        user_id: str,
        key_id: str,
        signed: JsonDict,
        mine: Mapping[str, JsonDict],
        devices: Mapping[str, JsonDict],
    ) -> list[JsonDict]:
        """Signatures on one's own device (by the self-signing key) or on one's own master
        key (by one's devices)."""
        master_json = mine.get("master")
        master = CrossSigningKey.model_validate(master_json) if master_json else None
        if key_id in devices:
            self_signing_json = mine.get("self_signing")
            if self_signing_json is None:
                raise MatrixError(400, "M_MISSING_PARAM", "No self-signing key is published.")
            self_signing = CrossSigningKey.model_validate(self_signing_json)
            if signable(signed) != signable(devices[key_id]):
                raise invalid_signature("The signed device keys are not the device's keys.")
            if not is_signed_by(signed, user_id, self_signing.key_id, self_signing.public_key):
                raise invalid_signature("Invalid signature by the self-signing key.")
            return [_signature(user_id, key_id, self_signing.key_id, signed)]
        if master is not None and master_json is not None and key_id == master.public_key:
            if signable(signed) != signable(master_json):
                raise invalid_signature("The signed key is not the published master key.")
            found = []
            for device_id, device in devices.items():
                device_key_id = f"ed25519:{device_id}"
                public = (device.get("keys") or {}).get(device_key_id)
                if isinstance(public, str) and is_signed_by(signed, user_id, device_key_id, public):
                    found.append(_signature(user_id, key_id, device_key_id, signed))
            if not found:
                raise invalid_signature("No valid signature by one of the user's devices.")
            return found
        raise MatrixError(404, "M_NOT_FOUND", f"Unknown device or key {key_id}.")

    def _signatures_of_other(
        self,
        user_id: str,
        target: str,
        key_id: str,
        signed: JsonDict,
        mine: Mapping[str, JsonDict],
        theirs_json: str | None,
    ) -> list[JsonDict]:
        """A signature on another user's master key, by one's user-signing key."""
        if "user_signing" not in mine:
            raise MatrixError(400, "M_MISSING_PARAM", "No user-signing key is published.")
        user_signing = CrossSigningKey.model_validate(mine["user_signing"])
        if theirs_json is None:
            raise MatrixError(404, "M_NOT_FOUND", f"{target} has no master key.")
        theirs = decode(theirs_json)
        master = CrossSigningKey.model_validate(theirs)
        if key_id != master.public_key or signable(signed) != signable(theirs):
            raise invalid_signature("The signed key is not the user's master key.")
        if not is_signed_by(signed, user_id, user_signing.key_id, user_signing.public_key):
            raise invalid_signature("Invalid signature by the user-signing key.")
        return [
            {
                "target_user_id": target,
                "target_key_id": key_id,
                "key_id": user_signing.key_id,
                "signature": signed["signatures"][user_id][user_signing.key_id],
            }
        ]

    # Sync

    async def one_time_keys_for_sync(
        self, user_id: str, device_id: str
    ) -> tuple[dict[str, int], list[str]]:
        """`device_one_time_keys_count` and `device_unused_fallback_key_types`: every sync
        sends them, from memory unless an upload or claim changed them."""
        return await self.counts.counts(user_id, device_id)


def _failure(errcode: str, error: str) -> JsonDict:
    return {"errcode": errcode, "error": error}


def _signature(user_id: str, target_key_id: str, key_id: str, signed: JsonDict) -> JsonDict:
    return {
        "target_user_id": user_id,
        "target_key_id": target_key_id,
        "key_id": key_id,
        "signature": signed["signatures"][user_id][key_id],
    }


def _add_signatures(served: JsonDict, rows: Sequence[key_store.SignatureRow]) -> None:
    if not rows:
        return
    signatures = {signer: dict(keys) for signer, keys in (served.get("signatures") or {}).items()}
    for row in rows:
        signatures.setdefault(row.signer_id, {})[row.key_id] = row.signature
    served["signatures"] = signatures


def _cross_signing_key(value: JsonDict, user_id: str, usage: str) -> CrossSigningKey:
    key = CrossSigningKey.model_validate(value)
    if key.user_id != user_id:
        raise bad_json(f"The {usage} key's user_id must be the authenticated user.")
    if usage not in key.usage:
        raise bad_json(f"The {usage} key's usage must include {usage!r}.")
    if not key.key_id.startswith("ed25519:") or key.key_id != f"ed25519:{key.public_key}":
        raise bad_json(f"The {usage} key must be one ed25519 key named by its public key.")
    return key


# Memberships that count as sharing a room for device lists: as Synapse, an invitee
# too, for the clients that encrypt for invited members.
SHARING = ("join", "invite")


def started_sharing(before: str | None, after: str | None) -> bool | None:
    """Whether a membership move of another user in a room one is joined to makes them
    start sharing it (True) or stop (False); None when neither (a new display name is
    a join after a join)."""
    if after == "join":
        return True if before != "join" else None
    if after == "invite":
        return True if before not in SHARING else None
    if before in SHARING:
        return False
    return None


async def device_list_changes(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> tuple[set[str], set[str]]:
    """(changed, left) between positions `after` and `upto`, from the database: users who
    share a room with `user_id` and whose device list changed or who started sharing one,
    and users who stopped sharing any."""
    changed = await key_store.changed_sharing_a_room(conn, user_id, after, upto)
    joined: set[str] = set()
    departed: set[str] = set()
    for move in await key_store.members_changed_since(conn, user_id, after, upto):
        if move.mine_after == "join" and move.mine_before == "join":
            started = started_sharing(move.before, move.after)
            if started is not None:
                (joined if started else departed).add(move.user_id)
        elif move.mine_after == "join":  # they joined: everyone in the room is new to them
            if move.after == "join":
                joined.add(move.user_id)
        elif move.mine_before == "join" and move.after == "join":  # they left
            departed.add(move.user_id)
    changed |= joined
    sharing = await key_store.sharing_a_room(conn, user_id, departed - changed)
    left = departed - sharing - changed
    return changed, left
