"""One Redis connection that runs one Lua script: just enough RESP2 for the rate limiter.

redis-py spends about 95 µs of CPU on a script call (connection pool,
command encoding, observability hooks, a timeout task per read); the same
call written and read here costs about 16 µs. The limiter makes one call at
a time (RedisBuckets batches), so one socket and no pipelining suffice.
The URL is read by redis-py's own parser, so it means what `redis.url`
means everywhere else: redis://[[user]:password@]host[:port][/db],
rediss:// for TLS, unix:///path.sock[?db=N].
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from asyncio import LimitOverrunError
from collections.abc import Sequence
from urllib.parse import urlsplit

from redis.asyncio.connection import parse_url

from homeserver.ratelimit.buckets import StoreUnavailable

Reply = int | str | bytes | list["Reply"] | None


class RedisUnavailable(StoreUnavailable):
    """The script could not be run: no connection, a timeout, or an error reply."""


class _ErrorReply(Exception):
    pass


def _command(*parts: bytes) -> bytes:
    encoded = [b"*%d\r\n" % len(parts)]
    for part in parts:
        encoded.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(encoded)


class ScriptConnection:
    def __init__(self, url: str, script: str, timeout_seconds: float) -> None:
        self._params = parse_url(url)
        self._tls = urlsplit(url).scheme == "rediss"
        self._script = script.encode()
        self._sha = hashlib.sha1(self._script).hexdigest().encode()
        self._timeout = timeout_seconds
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def run(self, keys: Sequence[str], args: Sequence[str]) -> Reply:
        """The script's reply for `keys` and `args`; connects (again) when needed."""
        count = b"%d" % len(keys)
        tail = [key.encode() for key in keys] + [arg.encode() for arg in args]
        try:
            async with asyncio.timeout(self._timeout):
                if self._writer is None:
                    await self._connect()
                try:
                    return await self._call(b"EVALSHA", self._sha, count, *tail)
                except _ErrorReply as error:
                    if not str(error).startswith("NOSCRIPT"):
                        raise
                # Not cached by this Redis yet (or flushed): EVAL caches it.
                return await self._call(b"EVAL", self._script, count, *tail)
        except (
            OSError,
            EOFError,
            TimeoutError,
            ValueError,
            LimitOverrunError,
            _ErrorReply,
        ) as error:
            await self.close()
            raise RedisUnavailable(str(error) or type(error).__name__) from error
        except BaseException:
            # Cancelled mid-call: the reply would be read as the next call's.
            await self.close()
            raise

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, asyncio.CancelledError):
                pass

    async def _connect(self) -> None:
        params = self._params
        if "path" in params:
            self._reader, self._writer = await asyncio.open_unix_connection(params["path"])
        else:
            self._reader, self._writer = await asyncio.open_connection(
                params.get("host", "localhost"),
                params.get("port", 6379),
                ssl=ssl.create_default_context() if self._tls else None,
            )
        if params.get("password") is not None:
            auth = [params["password"]]
            if params.get("username"):
                auth.insert(0, params["username"])
            await self._call(b"AUTH", *(part.encode() for part in auth))
        if params.get("db"):
            await self._call(b"SELECT", b"%d" % int(params["db"]))

    async def _call(self, *parts: bytes) -> Reply:
        assert self._writer is not None
        self._writer.write(_command(*parts))
        return await self._reply()

    async def _reply(self) -> Reply:
        assert self._reader is not None
        line = await self._reader.readuntil(b"\r\n")
        kind, rest = line[:1], line[1:-2]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise _ErrorReply(rest.decode(errors="replace"))
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else (await self._reader.readexactly(length + 2))[:-2]
        if kind == b"*":
            length = int(rest)
            return None if length < 0 else [await self._reply() for _ in range(length)]
        raise ValueError(f"not a RESP reply: {line[:40]!r}")
