"""Typed application keys under which app.py stores the services handlers call."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from homeserver.accounts.service import AccountService
from homeserver.events.signing import ServerKey
from homeserver.metrics import Metrics
from homeserver.rooms.service import RoomService

POOL = web.AppKey("pool", asyncpg.Pool)
ACCOUNTS = web.AppKey("accounts", AccountService)
ROOMS = web.AppKey("rooms", RoomService)
METRICS = web.AppKey("metrics", Metrics)
SERVER_KEY = web.AppKey("server_key", ServerKey)
SERVER_NAME = web.AppKey("server_name", str)
ADMINS = web.AppKey("admins", frozenset)
