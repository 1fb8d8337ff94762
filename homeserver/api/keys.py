"""Typed application keys under which app.py stores the services handlers call."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from homeserver.accounts.service import AccountService
from homeserver.events.live_keys import LiveKeyRing
from homeserver.metrics import Metrics
from homeserver.ratelimit.limiter import RateLimiter
from homeserver.rooms.service import RoomService

POOL = web.AppKey("pool", asyncpg.Pool)
ACCOUNTS = web.AppKey("accounts", AccountService)
ROOMS = web.AppKey("rooms", RoomService)
METRICS = web.AppKey("metrics", Metrics)
# The signing key ring, re-read when `keys rotate` changes it.
KEYS = web.AppKey("keys", LiveKeyRing)
SERVER_NAME = web.AppKey("server_name", str)
ADMINS = web.AppKey("admins", frozenset)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# listen.trusted_proxies: the peers whose X-Forwarded-For is believed.
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
