"""A real SMTP server (aiosmtpd, in a thread of its own) the server under test sends to.

Only when this suite starts the server itself: against SYTEST_LITE_BASE_URL there
is no mailbox to read, and the email cases are skipped.
"""

from __future__ import annotations

import asyncio
import email
import re
import threading
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

WAIT_SECONDS = 15.0
LINK = re.compile(r"https?://[^\s<>\"]+")


class Mailbox:
    def __init__(self) -> None:
        self._messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.port = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(message)
        return "250 OK"

    def start(self, port: int) -> None:
        self._controller = Controller(
            self, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True, ready_timeout=10
        )
        self._controller.start()
        self.port = port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self._messages if address.lower() in str(m["To"]).lower()]

    async def wait_for(self, address: str, count: int = 1) -> EmailMessage:
        """The `count`th email to `address`, once it arrived."""
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while len(self.to(address)) < count:
            assert asyncio.get_running_loop().time() < deadline, f"no email to {address}"
            await asyncio.sleep(0.05)
        return self.to(address)[count - 1]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def link_in(message: EmailMessage, containing: str) -> str:
    for link in LINK.findall(text_of(message)):
        if containing in link:
            return str(link)
    raise AssertionError(f"no link with {containing!r} in:\n{text_of(message)}")
