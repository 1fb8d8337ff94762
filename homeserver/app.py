"""The aiohttp application: middleware, routes and the services, wired once."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from homeserver import logs
from homeserver.accounts.service import AccountService, RegistrationPolicy
from homeserver.api import accounts, directory, rooms, server, sync, sync_stream
from homeserver.api import filters as filters_api
from homeserver.api import history as history_api
from homeserver.api import push_rules as push_rules_api
from homeserver.api import receipts as receipts_api
from homeserver.api import to_device as to_device_api
from homeserver.api import typing as typing_api
from homeserver.api.filters import FILTERS
from homeserver.api.history import HISTORY
from homeserver.api.keys import ACCOUNTS, ADMINS, METRICS, POOL, ROOMS, SERVER_KEY, SERVER_NAME
from homeserver.api.receipts import RECEIPTS
from homeserver.api.sync import SYNC
from homeserver.api.to_device import TO_DEVICE
from homeserver.api.typing import TYPING
from homeserver.bus.base import Bus
from homeserver.bus.local import LocalBus
from homeserver.bus.redis import RedisBus
from homeserver.config import Config
from homeserver.errors import MatrixError
from homeserver.events.signing import load_or_create_key
from homeserver.log.appender import Appender
from homeserver.metrics import Metrics
from homeserver.receipts.service import ReceiptService
from homeserver.rooms import chain_rules
from homeserver.rooms.service import RoomService
from homeserver.store.database import create_pool
from homeserver.store.migrate import migrate
from homeserver.sync.filters import FilterService
from homeserver.sync.history import HistoryService
from homeserver.sync.notifier import Notifier
from homeserver.sync.recent import RecentEvents
from homeserver.sync.service import SyncService
from homeserver.to_device.service import ToDeviceService
from homeserver.typing_notices.service import create_typing_service

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
APPENDER = web.AppKey("appender", Appender)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
}


def _error_response(error: MatrixError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _http_error(error: web.HTTPException) -> MatrixError:
    if isinstance(error, web.HTTPNotFound):
        return MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
    if isinstance(error, web.HTTPMethodNotAllowed):
        return MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request method")
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        return MatrixError(413, "M_TOO_LARGE", "Request body is too large")
    return MatrixError(error.status, "M_UNKNOWN", error.reason)


@web.middleware
async def serve_matrix(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request IDs, CORS, metrics, and every error rendered as a Matrix error."""
    request_id = request.headers.get("X-Request-ID") or secrets.token_hex(8)
    token = logs.request_id.set(request_id)
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        if request.method == "OPTIONS":
            response = web.Response(status=200)
        else:
            response = await _handle(request, handler)
    finally:
        logs.request_id.reset(token)
    if not response.prepared:
        response.headers.update(CORS_HEADERS)
        response.headers["X-Request-ID"] = request_id
    resource = request.match_info.route.resource
    endpoint = resource.canonical if resource is not None else "unmatched"
    elapsed = time.perf_counter() - started
    metrics = request.app[METRICS]
    metrics.requests.labels(endpoint, request.method, str(response.status)).inc()
    metrics.latency.labels(endpoint, request.method).observe(elapsed)
    if response.status >= 500:
        log.error("%s %s -> %d", request.method, request.path, response.status)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if any("\x00" in value for value in request.match_info.values()):
            # PostgreSQL text cannot hold U+0000; no Matrix identifier contains it.
            raise MatrixError(400, "M_INVALID_PARAM", "Path parameters may not contain U+0000.")
        return await handler(request)
    except MatrixError as error:
        return _error_response(error)
    except ValidationError as error:
        return _error_response(MatrixError(400, "M_BAD_JSON", _validation_message(error)))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error_response(_http_error(error))
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return _error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))


def create_app(config: Config, dsn: str) -> web.Application:
    """The application for `config`, talking to PostgreSQL at `dsn`."""
    app = web.Application(
        middlewares=[serve_matrix], client_max_size=config.limits.max_request_bytes
    )
    app[METRICS] = Metrics()
    app[SERVER_NAME] = config.server_name
    app[ADMINS] = frozenset(config.admins)

    async def services(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(dsn, config.database.pool_min_size, config.database.pool_max_size)
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        key = load_or_create_key(config.effective_signing_key_path, config.server_name)
        bus: Bus = (
            RedisBus(config.redis.url, config.server_name) if config.redis.url else LocalBus()
        )
        appender = Appender(
            pool, key, chain_rules.authorize, max_event_bytes=config.limits.max_event_bytes
        )
        appender.add_listener(app[METRICS].record_batch)
        recent = RecentEvents(pool)
        notifier = Notifier(bus, recent)
        appender.add_listener(notifier.committed)
        appender.start()
        app[POOL] = pool
        app[APPENDER] = appender
        app[SERVER_KEY] = key
        app[ACCOUNTS] = AccountService(
            pool,
            appender,
            config.server_name,
            RegistrationPolicy(
                config.registration.enabled, config.registration.min_password_length
            ),
            bus,
        )
        room_service = RoomService(pool, appender, config.server_name)
        app[ROOMS] = room_service
        filter_service = FilterService(pool, appender)
        app[FILTERS] = filter_service
        app[HISTORY] = HistoryService(pool, room_service)
        receipt_service = ReceiptService(pool, appender)
        app[RECEIPTS] = receipt_service
        typing_service = create_typing_service(pool, notifier, config.redis.url, config.server_name)
        app[TYPING] = typing_service
        to_device_service = ToDeviceService(pool, notifier)
        app[TO_DEVICE] = to_device_service
        sync_service = SyncService(
            pool,
            notifier,
            room_service,
            recent=recent,
            receipts=receipt_service,
            account_data=receipt_service,
            typing=typing_service,
            to_device=to_device_service,
        )
        app[SYNC] = sync_service
        await bus.start()
        await typing_service.start()
        await sync_service.start()
        yield
        await typing_service.stop()
        await appender.stop()
        await notifier.close()
        await bus.stop()
        await pool.close()

    app.cleanup_ctx.append(services)
    for module in (
        server,
        accounts,
        rooms,
        directory,
        sync,
        sync_stream,
        filters_api,
        history_api,
        receipts_api,
        typing_api,
        to_device_api,
        push_rules_api,
    ):
        app.router.add_routes(module.routes)
    return app
