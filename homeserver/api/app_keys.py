"""Typed application keys of what app.py builds and more than one capability's handlers use.

A capability's own service is stored under a key next to its routes (api/sync.py's
SYNC, for one); what is shared (the pool, the appender, accounts, rooms, the
signing keys, the server's name) is here, so every handler module, the admin
API's too, finds it in one place.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from homeserver.accounts.service import AccountService
from homeserver.admin.admins import ServerAdmins
from homeserver.admin.audit import AuditTrail
from homeserver.admin.deactivation import Deactivation
from homeserver.events.live_keys import LiveKeyRing
from homeserver.log.appender import Appender
from homeserver.metrics import Metrics
from homeserver.ratelimit.limiter import RateLimiter
from homeserver.rooms.service import RoomService

POOL = web.AppKey("pool", asyncpg.Pool)
APPENDER = web.AppKey("appender", Appender)
ACCOUNTS = web.AppKey("accounts", AccountService)
ROOMS = web.AppKey("rooms", RoomService)
METRICS = web.AppKey("metrics", Metrics)
# The server's signing key ring, re-read when `keys rotate` changes it.
SIGNING_KEYS = web.AppKey("signing_keys", LiveKeyRing)
SERVER_NAME = web.AppKey("server_name", str)
# Who is a server admin (the config's `admins` and those flagged through the admin API;
# every rule that favours admins asks it), and the audit trail every admin action is
# recorded in (homeserver/admin).
SERVER_ADMINS = web.AppKey("server_admins", ServerAdmins)
AUDIT_TRAIL = web.AppKey("audit_trail", AuditTrail)
# Deactivation: one implementation for POST /account/deactivate and the admin API.
DEACTIVATION = web.AppKey("deactivation", Deactivation)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# listen.trusted_proxies: the peers whose X-Forwarded-For is believed.
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
