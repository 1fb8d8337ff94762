"""Structured logs: one JSON object per line, with the ID of the request being served.

The request's ID lives in a context variable, set by the middleware for the
handler and everything it awaits or starts (tasks and `asyncio.to_thread`
copy the context). A filter on the handler stamps it on every record as
`request_id`, so both formatters, and any other a deployment plugs in, can
show it (`%(request_id)s`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# What an incoming X-Request-ID must look like to be kept: a proxy's or a
# client's trace ID (UUIDs, hex, base64, `service:1234`). Anything else (too
# long, spaces, quotes, control characters) is replaced by our own, so a
# client cannot write what it likes into the log.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def accepted_request_id(offered: str | None) -> str | None:
    """`offered` if it is fit to be logged and echoed, else None."""
    if offered is None or _SANE_REQUEST_ID.fullmatch(offered) is None:
        return None
    return offered


@contextlib.contextmanager
def serving(rid: str | None) -> Iterator[None]:
    """Log what runs inside as part of the request `rid` (work done for a request
    in a task of its own, such as the appender's)."""
    token = request_id.set(rid)
    try:
        yield
    finally:
        request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the ID of the request it was logged for (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(time.time(), 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (rid := getattr(record, "request_id", None)) is not None:
            entry["request_id"] = rid
        for key in ("method", "path", "status", "duration_ms", "user_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        prefix = f"[{rid}] " if rid else ""
        record.message = record.getMessage()
        head = f"{self.formatTime(record)} {record.levelname} {record.name}"
        text = f"{head}: {prefix}{record.message}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
