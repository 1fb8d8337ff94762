"""Push: a user's rules (read and edit), their pushers, and the notifications listed.

Rules are a fact of the user's account chain (push/ruleset.py): each edit reads
the current `m.push_rules` fact, applies the change and appends the result as
a StateEdit of that fact, so two concurrent edits never lose one (the second is
refused under the append lock and tried again on the new rules).

Pushers are rows outside the log, owned by the access token that set them
(store/push.py): they die with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.clock import now_ms
from homeserver.errors import invalid_param, missing_param
from homeserver.events import types
from homeserver.events.model import StateEdit
from homeserver.log.appender import Appender
from homeserver.log.edits import append_edit
from homeserver.push import ruleset as rules_of
from homeserver.push.default_rules import Ruleset
from homeserver.rooms.rendering import EventRenderer
from homeserver.store import account_data as account_data_store
from homeserver.store import push as push_store
from homeserver.store import rooms as room_store

JsonDict = dict[str, Any]
PUSH_RULES = push_store.PUSH_RULES
# The spec's limits on a pusher's keys.
MAX_PUSHKEY_BYTES = 512
MAX_APP_ID_LENGTH = 64
NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_NOTIFICATIONS_PAGE = 100


@dataclass(eq=False)
class PushRuleService:
    pool: asyncpg.Pool
    appender: Appender

    async def ruleset(self, user_id: str) -> Ruleset:
        """The user's global ruleset, as GET /pushrules serves it."""
        async with self.pool.acquire() as conn:
            content = await account_data_store.content(conn, user_id, "", PUSH_RULES)
        return rules_of.effective(user_id, rules_of.global_of(content))

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        body: Mapping[str, Any],
        before: str | None,
        after: str | None,
    ) -> None:
        await self._edit(
            user_id,
            lambda rules: rules_of.put_rule(rules, kind, rule_id, body, before=before, after=after),
        )

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        await self._edit(user_id, lambda rules: rules_of.delete_rule(rules, kind, rule_id))

    async def set_attribute(
        self, user_id: str, kind: str, rule_id: str, attribute: str, body: Mapping[str, Any]
    ) -> None:
        """PUT a rule's `enabled` or `actions`."""
        setter = rules_of.set_enabled if attribute == "enabled" else rules_of.set_actions
        await self._edit(user_id, lambda rules: setter(rules, kind, rule_id, body))

    async def copy_room_rules(self, user_ids: Sequence[str], old_room: str, new_room: str) -> None:
        """Copy each user's rules about `old_room` for `new_room` (a room upgrade)."""
        async with self.pool.acquire() as conn:
            stored = await push_store.stored_rules(conn, user_ids)
        for user_id, content in stored.items():
            current = rules_of.effective(user_id, rules_of.global_of(content))
            if rules_of.room_rules_copied(current, old_room, new_room) is None:
                continue

            def copied(rules: Ruleset) -> Ruleset:
                return rules_of.room_rules_copied(rules, old_room, new_room) or rules

            await self._edit(user_id, copied)

    async def _edit(self, user_id: str, edit: Callable[[Ruleset], Ruleset]) -> None:
        key = push_store.account_data_key(PUSH_RULES)

        async def compute() -> StateEdit:
            async with self.pool.acquire() as conn:
                fact = await room_store.state_event(conn, user_id, types.ACCOUNT_DATA, key)
            held = fact.content.get("content") if fact is not None else None
            current = rules_of.effective(
                user_id, rules_of.global_of(held if isinstance(held, dict) else None)
            )
            return StateEdit(
                user_id,
                user_id,
                types.ACCOUNT_DATA,
                {"room_id": "", "type": PUSH_RULES, "content": {"global": edit(current)}},
                state_key=key,
                replaces=fact.event_id if fact is not None else None,
            )

        await append_edit(self.appender, compute, "Your push rules")


def parse_pusher(body: Mapping[str, Any]) -> push_store.PusherSettings | tuple[str, str]:
    """The settings of a pusher to set, or (app_id, pushkey) of one to delete (kind null)."""
    missing = [key for key in ("kind", "app_id", "pushkey") if key not in body]
    if missing:
        raise missing_param(f"Missing parameters: {', '.join(missing)}")
    app_id, pushkey, kind = body["app_id"], body["pushkey"], body["kind"]
    if not isinstance(app_id, str) or not app_id or len(app_id) > MAX_APP_ID_LENGTH:
        raise invalid_param(f"app_id must be a string of 1 to {MAX_APP_ID_LENGTH} characters.")
    if not isinstance(pushkey, str) or not pushkey or len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
        raise invalid_param(f"pushkey must be a string of 1 to {MAX_PUSHKEY_BYTES} bytes.")
    if kind is None:
        return app_id, pushkey
    if kind not in ("http", "email"):
        raise invalid_param(f"Unsupported pusher kind {kind!r}: 'http' or 'email'.")
    required = ("app_display_name", "device_display_name", "lang", "data")
    missing = [key for key in required if key not in body]
    if missing:
        raise missing_param(f"Missing parameters: {', '.join(missing)}")
    for key in ("app_display_name", "device_display_name", "lang"):
        if not isinstance(body[key], str):
            raise invalid_param(f"{key} must be a string.")
    profile_tag = body.get("profile_tag")
    if profile_tag is not None and not isinstance(profile_tag, str):
        raise invalid_param("profile_tag must be a string.")
    data = body["data"]
    if not isinstance(data, dict):
        raise invalid_param("data must be an object.")
    # An email pusher's pushkey is the address, one of the account's (checked by set_pusher).
    if kind == "http":
        _check_http_data(data)
    return push_store.PusherSettings(
        kind,
        app_id,
        pushkey,
        body["app_display_name"],
        body["device_display_name"],
        profile_tag,
        body["lang"],
        data,
    )


def _check_http_data(data: Mapping[str, Any]) -> None:
    url = data.get("url")
    if not isinstance(url, str):
        raise missing_param("data.url is required for an http pusher.")
    if not url.startswith(("https://", "http://")) or not url.split("?")[0].endswith(NOTIFY_PATH):
        raise invalid_param(f"data.url must be an http(s) URL whose path ends in {NOTIFY_PATH}.")
    if "format" in data and data["format"] != "event_id_only":
        raise invalid_param("data.format: the only format is 'event_id_only'.")


# The address an email pusher mails, normalised, if it is one of the user's own;
# M_THREEPID_NOT_FOUND (or not given: no email pushers) otherwise (homeserver/email).
EmailPushkeyCheck = Callable[[str, str], Awaitable[str]]


@dataclass(eq=False)
class PusherService:
    pool: asyncpg.Pool
    email_pushkey: EmailPushkeyCheck | None = None

    async def pushers(self, user_id: str) -> list[JsonDict]:
        async with self.pool.acquire() as conn:
            rows = await push_store.pushers_of(conn, user_id)
        return [row.client_form() for row in rows]

    async def set_pusher(self, user_id: str, token_hash: str, body: Mapping[str, Any]) -> None:
        parsed = parse_pusher(body)
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise invalid_param("append must be true or false.")
        if not isinstance(parsed, tuple) and parsed.kind == "email":
            if self.email_pushkey is None:
                raise invalid_param("This server sends no email notifications.")
            address = await self.email_pushkey(user_id, parsed.pushkey)
            parsed = dataclasses.replace(parsed, pushkey=address)
        async with self.pool.acquire() as conn, conn.transaction():
            if isinstance(parsed, tuple):
                await push_store.delete_user_pusher(conn, user_id, *parsed)
                return
            if not append:
                # The spec: remove the other users' pushers with this app ID and pushkey.
                await push_store.delete_pushers_with_key(
                    conn, parsed.app_id, parsed.pushkey, except_user=user_id
                )
            await push_store.set_pusher(
                conn, user_id=user_id, token_hash=token_hash, settings=parsed, now_ms=now_ms()
            )


@dataclass(eq=False)
class NotificationService:
    """GET /notifications: what the user was notified of, newest first."""

    pool: asyncpg.Pool
    renderer: EventRenderer

    async def notifications(
        self, user_id: str, before: int | None, limit: int, highlight_only: bool
    ) -> tuple[list[JsonDict], int | None]:
        """A page of notifications, and the position to ask for the next from (None: done)."""
        limit = max(1, min(limit, MAX_NOTIFICATIONS_PAGE))
        async with self.pool.acquire() as conn:
            page = await push_store.notifications_page(conn, user_id, before, limit, highlight_only)
        # Only ever events the follower found the user could see (joined then).
        served = await self.renderer.serve([item.event for item in page])
        notifications = [
            {
                "actions": item.actions,
                "event": event,
                "read": item.read,
                "room_id": item.event.room_id,
                "ts": item.ts,
            }
            for item, event in zip(page, served, strict=True)
        ]
        following = page[-1].event.stream_position if len(page) == limit else None
        return notifications, following
