"""Sending an email: through an SMTP server, or, with none configured, into the log.

smtplib runs in a worker thread (`asyncio.to_thread`), a few sends at a time, so
a slow or silent mail server never stalls the event loop; `smtp_timeout_seconds`
bounds each. A refusal or an unreachable server raises `MailNotSent`, which the
callers turn into a clear Matrix error after undoing what they had started.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal, Protocol

log = logging.getLogger(__name__)

# What start-up says, once (not per worker), when no mail server is configured.
NO_SMTP_HOST = "email: no email.smtp_host configured: emails are written to this log, not sent"
# Sends in flight at once per process; the rest wait their turn (bounded threads).
_PARALLEL_SENDS = 4


class MailNotSent(Exception):
    """The mail server refused the email or could not be reached."""


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    # Headers besides From/To/Subject/Date/Message-ID (List-Unsubscribe).
    headers: tuple[tuple[str, str], ...] = ()


class Mailer(Protocol):
    async def send(self, email: Email) -> None: ...


def build_message(email: Email, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    for name, value in email.headers:
        message[name] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    username: str
    password: str
    timeout_seconds: float


class SmtpMailer:
    def __init__(self, settings: SmtpSettings, sender: str) -> None:
        self._settings = settings
        self._sender = sender
        self._slots = asyncio.Semaphore(_PARALLEL_SENDS)

    async def send(self, email: Email) -> None:
        message = build_message(email, self._sender)
        async with self._slots:
            await asyncio.to_thread(self._send_now, message)

    def _send_now(self, message: EmailMessage) -> None:
        settings = self._settings
        try:
            client: smtplib.SMTP
            if settings.security == "tls":
                client = smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout_seconds,
                    context=ssl.create_default_context(),
                )
            else:
                client = smtplib.SMTP(
                    settings.host, settings.port, timeout=settings.timeout_seconds
                )
            with client:
                if settings.security == "starttls":
                    # Refused rather than sent in the clear when the server offers no TLS.
                    client.starttls(context=ssl.create_default_context())
                if settings.username:
                    client.login(settings.username, settings.password)
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            log.warning(
                "email to %s not sent through %s:%d: %s",
                message["To"],
                settings.host,
                settings.port,
                error,
            )
            raise MailNotSent(str(error)) from error


class LogMailer:
    """No mail server: each email is written to the log in full, for whoever runs the
    server to read (the two-command start, tests of the flows)."""

    def __init__(self, sender: str) -> None:
        self._sender = sender

    async def send(self, email: Email) -> None:
        message = build_message(email, self._sender)
        log.info("email not sent (no email.smtp_host); it reads:\n%s", message.as_string())
