"""Email notifications: one email about the messages a user left unread too long.

A `kind: email` pusher (POST /pushers/set, pushkey one of the user's addresses)
asks for them, as in the spec and Synapse. What to tell is what the push
follower already decided by the user's push rules (`push_notifications`): a
muted room notifies nothing, so it is never mailed. The notifier is a durable
follower (log/followers.py) whose `lead`, in the one process holding its lease:

- finds, for each email pusher, the user's notifications after the pusher's
  progress that their read receipts have not passed;
- once the oldest of them has waited `email.notif_delay`, claims them (moves the
  pusher's progress, compare-and-set, committed) and sends one email listing
  the rooms, senders and snippets; a mail server that refuses it gives the
  claim back, to try again a minute later. A claim is committed before the
  email leaves, so a restart never sends an email twice (a crash in between
  loses that one email rather than doubling it);
- a room with encryption on, or an encrypted event, is shown without content.

Its `handle` only wakes `lead` when messages arrive; the work is per pusher,
not per event, since one email covers many events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import asyncpg

from homeserver.email.mailer import Email, MailNotSent
from homeserver.email.service import EmailService
from homeserver.events import types
from homeserver.events.model import Event
from homeserver.log.followers import AfterCommit, Start
from homeserver.store import email_notifications as store

log = logging.getLogger(__name__)

FOLLOWER_NAME = "email.notifications"
# Notifications read per pusher and email: the email lists at most this many.
MAX_MESSAGES = 50
MESSAGES_PER_ROOM = 5
SNIPPET_CHARACTERS = 140
# The longest sleep between two looks when nothing woke the notifier, and the wait
# before a refused email is tried again.
MAX_SLEEP_SECONDS = 30.0
RETRY_SECONDS = 60.0
MIN_LOOK_SECONDS = 1.0


class EmailNotifier:
    name = FOLLOWER_NAME
    start = Start.NOW
    event_types = None

    def __init__(
        self, pool: asyncpg.Pool, emails: EmailService, delay_seconds: float, base_url: str
    ) -> None:
        self._pool = pool
        self._emails = emails
        self._delay_ms = int(delay_seconds * 1000)
        self._base_url = base_url
        self._woken = asyncio.Event()
        # Pushers whose email the mail server refused: not before this time (monotonic).
        self._retry_at: dict[int, float] = {}

    async def handle(self, conn: asyncpg.Connection, events: Sequence[Event]) -> AfterCommit | None:
        if not any(types.is_room_chain(event.room_id) for event in events):
            return None

        async def wake() -> None:
            self._woken.set()

        return wake

    async def lead(self) -> None:
        ceiling = max(0.05, min(self._delay_ms / 2000, MAX_SLEEP_SECONDS))
        while True:
            self._woken.clear()
            wait = await self.send_due()
            # A busy server commits many times a second: one look per MIN_LOOK_SECONDS
            # at most, whatever woke it (a new message is not due before notif_delay).
            await asyncio.sleep(min(MIN_LOOK_SECONDS, ceiling))
            try:
                async with asyncio.timeout(min(wait, ceiling) if wait is not None else ceiling):
                    await self._woken.wait()
            except TimeoutError:
                pass

    async def send_due(self) -> float | None:
        """Send every email that is due; the seconds until the next one will be."""
        now_ms = int(time.time() * 1000)
        soonest: float | None = None
        async with self._pool.acquire() as conn:
            pushers = await store.email_pushers(conn)
        for pusher in pushers:
            if pusher.oldest_unread_ts is None:
                continue
            if self._retry_at.get(pusher.pusher_id, 0.0) > time.monotonic():
                continue
            due_ms = pusher.oldest_unread_ts + self._delay_ms
            if due_ms > now_ms:
                wait = (due_ms - now_ms) / 1000
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            async with self._pool.acquire() as conn:
                unread = await store.unread(
                    conn, pusher.user_id, pusher.last_position, pusher.created_ts, MAX_MESSAGES
                )
            if unread:
                await self._send(pusher, unread, now_ms)
        return soonest

    async def _send(
        self, pusher: store.EmailPusher, unread: list[store.Unread], now_ms: int
    ) -> None:
        position = unread[-1].stream_position
        async with self._pool.acquire() as conn:
            if not await store.claim(
                conn, pusher.pusher_id, pusher.last_position, position, now_ms
            ):
                return  # removed or moved on meanwhile
            email = await self._email(conn, pusher, unread)
        try:
            await self._emails.mailer.send(email)
        except MailNotSent:
            async with self._pool.acquire() as conn:
                await store.give_back(conn, pusher.pusher_id, position, pusher.last_position)
            self._retry_at[pusher.pusher_id] = time.monotonic() + RETRY_SECONDS
            return
        self._retry_at.pop(pusher.pusher_id, None)
        log.info("email notification of %d messages sent to %s", len(unread), pusher.user_id)

    async def _email(
        self, conn: asyncpg.Connection, pusher: store.EmailPusher, unread: list[store.Unread]
    ) -> Email:
        events = await store.events(conn, [item.event_id for item in unread])
        room_ids = list(dict.fromkeys(item.room_id for item in unread))
        names, encrypted = await store.room_facts(conn, room_ids)
        senders = {(item.room_id, events[item.event_id]["sender"]) for item in unread}
        display = await store.display_names(conn, sorted(senders))
        user_name = await store.profile_name(conn, pusher.user_id)
        rooms: dict[str, dict[str, Any]] = {}
        for item in unread:
            event = events[item.event_id]
            sender = display.get((item.room_id, event["sender"]), event["sender"])
            room = rooms.setdefault(
                item.room_id,
                {
                    "room_id": item.room_id,
                    "name": names.get(item.room_id),
                    "encrypted": item.room_id in encrypted,
                    "messages": [],
                    "message_count": 0,
                    "senders": [],
                },
            )
            room["message_count"] += 1
            if sender not in room["senders"]:
                room["senders"].append(sender)
            if len(room["messages"]) < MESSAGES_PER_ROOM:
                room["messages"].append(
                    {"sender": sender, "snippet": _snippet(event, room["encrypted"])}
                )
        for room in rooms.values():
            if room["name"] is None:
                room["name"] = "your conversation with " + ", ".join(room["senders"][:3])
        token = await self._emails.unsubscribe_token(pusher.user_id, pusher.address)
        unsubscribe = f"{self._base_url}/_linkchat/client/email/unsubscribe?" + urlencode(
            {"user": pusher.user_id, "address": pusher.address, "token": token}
        )
        email = self._emails.templates.email(
            "notification",
            pusher.address,
            rooms=list(rooms.values()),
            message_count=len(unread),
            user_name=user_name or pusher.user_id[1:].partition(":")[0],
            address=pusher.address,
            unsubscribe_link=unsubscribe,
            open_link=self._emails.public_baseurl,
        )
        # Mail clients show an unsubscribe button for it, which needs no login either.
        return dataclasses.replace(email, headers=(("List-Unsubscribe", f"<{unsubscribe}>"),))


def _snippet(event: dict[str, Any], room_encrypted: bool) -> str:
    """What the email shows of a message: never anything of an encrypted room's."""
    if room_encrypted or event.get("type") == "m.room.encrypted":
        return "an encrypted message"
    content = event.get("content")
    content = content if isinstance(content, dict) else {}
    if event.get("type") == types.MEMBER and content.get("membership") == "invite":
        return "invited you"
    msgtype = content.get("msgtype")
    if msgtype in ("m.image", "m.video", "m.audio", "m.file"):
        return {"m.image": "an image", "m.video": "a video", "m.audio": "a voice message"}.get(
            msgtype, "a file"
        )
    body = content.get("body")
    if not isinstance(body, str) or not body.strip():
        return "a message"
    text = " ".join(body.split())
    if len(text) > SNIPPET_CHARACTERS:
        text = text[: SNIPPET_CHARACTERS - 1].rstrip() + "…"
    return text
