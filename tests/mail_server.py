"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the email tests, and reading what it got."""

from __future__ import annotations

import asyncio
import email
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.matrix import EVENTUALLY_SECONDS, MatrixClient

LINK = re.compile(r"https?://[^\s<>\"]+")


@dataclass
class Inbox:
    """What the server received; `refuse` makes it answer every email with a 554."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            return "554 5.7.1 Message refused by the test's mail server"
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    async def wait_for(self, address: str, count: int = 1) -> EmailMessage:
        """The `count`th email to `address`, once it has arrived."""
        deadline = asyncio.get_running_loop().time() + EVENTUALLY_SECONDS
        while len(self.to(address)) < count:
            assert asyncio.get_running_loop().time() < deadline, f"no email to {address}"
            await asyncio.sleep(0.05)
        return self.to(address)[count - 1]


@dataclass
class MailServer:
    inbox: Inbox
    port: int

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The `email` config section sending through this server."""
        return {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "smtp_security": "none",
            "smtp_timeout_seconds": 10.0,
            **extra,
        }


@pytest.fixture
async def mail_server() -> AsyncIterator[MailServer]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="mail.test", loop=loop, enable_SMTPUTF8=True),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield MailServer(inbox, port)
    finally:
        server.close()
        await server.wait_closed()


def email_pusher(address: str) -> dict[str, Any]:
    """The body of POST /pushers/set for a `kind: email` pusher mailing `address`."""
    return {
        "kind": "email",
        "app_id": "m.email",
        "pushkey": address,
        "app_display_name": "Email notifications",
        "device_display_name": address,
        "lang": "en",
        "data": {},
    }


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(message: EmailMessage, containing: str) -> str:
    """The first link of the plain-text part whose URL contains `containing`."""
    for link in LINK.findall(text_of(message)):
        if containing in link:
            return str(link)
    raise AssertionError(f"no link with {containing!r} in:\n{text_of(message)}")


def code_in(message: EmailMessage) -> str:
    found = re.search(r"code[^:]*: ([A-Z0-9]{8})", text_of(message))
    assert found is not None, text_of(message)
    return found.group(1)


async def follow(hs: MatrixClient, link: str) -> tuple[int, str]:
    """GET a link from an email on the test server (whatever host the link names)."""
    parts = urlsplit(link)
    async with hs.http.get(
        parts.path + ("?" + parts.query if parts.query else ""), allow_redirects=False
    ) as response:
        return response.status, await response.text()
