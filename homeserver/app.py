"""The aiohttp application: middleware, routes and the services, wired once."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web
from pydantic import ValidationError

from homeserver import logs
from homeserver.account_data.service import AccountDataService
from homeserver.accounts.service import AccountService, RegistrationPolicy
from homeserver.accounts.uia import EMAIL_IDENTITY
from homeserver.admin import rules as admin_rules
from homeserver.admin.admins import ServerAdmins
from homeserver.admin.audit import AuditTrail
from homeserver.admin.deactivation import Deactivation
from homeserver.admin.media import MediaAdmin
from homeserver.admin.ratelimits import RateLimitOverrides
from homeserver.admin.registration_tokens import (
    REGISTRATION_TOKEN,
    RegistrationTokens,
    RegistrationTokenStage,
)
from homeserver.admin.threepids import AdminThreepids
from homeserver.admin.users import UserAdmin
from homeserver.admission import Admission
from homeserver.api import account_data as account_data_api
from homeserver.api import accounts, directory, rooms, server, sync, sync_stream
from homeserver.api import admin_audit as admin_audit_api
from homeserver.api import admin_media as admin_media_api
from homeserver.api import admin_reports as admin_reports_api
from homeserver.api import admin_rooms as admin_rooms_api
from homeserver.api import admin_server as admin_server_api
from homeserver.api import admin_shadow_bans as admin_shadow_bans_api
from homeserver.api import admin_users as admin_users_api
from homeserver.api import blocks as blocks_api
from homeserver.api import channels as channels_api
from homeserver.api import device_control as device_control_api
from homeserver.api import email as email_api
from homeserver.api import filters as filters_api
from homeserver.api import friends as friends_api
from homeserver.api import history as history_api
from homeserver.api import keys as keys_api
from homeserver.api import legacy_sync as legacy_sync_api
from homeserver.api import media as media_api
from homeserver.api import metrics as metrics_api
from homeserver.api import mutes as mutes_api
from homeserver.api import notifications as notifications_api
from homeserver.api import presence as presence_api
from homeserver.api import profile as profile_api
from homeserver.api import push_gateway as push_gateway_api
from homeserver.api import push_rules as push_rules_api
from homeserver.api import pushers as pushers_api
from homeserver.api import receipts as receipts_api
from homeserver.api import registration_tokens as registration_tokens_api
from homeserver.api import reports as reports_api
from homeserver.api import roles as roles_api
from homeserver.api import room_directory as room_directory_api
from homeserver.api import room_keys as room_keys_api
from homeserver.api import search as search_api
from homeserver.api import to_device as to_device_api
from homeserver.api import typing as typing_api
from homeserver.api import user_directory as user_directory_api
from homeserver.api.app_keys import (
    ACCOUNTS,
    APPENDER,
    AUDIT_TRAIL,
    DEACTIVATION,
    METRICS,
    POOL,
    RATE_LIMITER,
    ROOMS,
    SERVER_ADMINS,
    SERVER_NAME,
    SIGNING_KEYS,
    TRUSTED_PROXIES,
)
from homeserver.api.filters import FILTERS
from homeserver.api.history import HISTORY
from homeserver.api.receipts import RECEIPTS
from homeserver.api.releases import r0_routes
from homeserver.api.responses import ok
from homeserver.api.sync import SYNC
from homeserver.api.to_device import TO_DEVICE
from homeserver.api.typing import TYPING
from homeserver.bus.base import Bus
from homeserver.bus.local import LocalBus
from homeserver.bus.postgres import PostgresBus
from homeserver.bus.redis import RedisBus
from homeserver.channels import rules as channel_rules
from homeserver.channels.presets import channel_power_levels
from homeserver.channels.service import ChannelService
from homeserver.config import ApnsApp, Config, FcmApp, MetricsListener
from homeserver.device_control import rules as device_rules
from homeserver.device_control.checks import DeviceEventChecks
from homeserver.device_control.expiry import CommandExpiry
from homeserver.device_control.service import DeviceService, DeviceSettings
from homeserver.e2ee import rules as e2ee_rules
from homeserver.e2ee.backup import BackupService
from homeserver.e2ee.device_lists import DeviceLists
from homeserver.e2ee.service import KeyCounts, KeyService
from homeserver.email import rules as email_rules
from homeserver.email.mailer import LogMailer, Mailer, SmtpMailer, SmtpSettings
from homeserver.email.notifier import EmailNotifier
from homeserver.email.service import EmailIdentityStage, EmailService, EmailSettings
from homeserver.email.templates import Templates
from homeserver.errors import MatrixError, unavailable, validation_problem
from homeserver.events import types
from homeserver.events.live_keys import LiveKeyRing
from homeserver.events.signing import load_key_ring
from homeserver.friends import rules as friend_rules
from homeserver.friends.service import FriendService
from homeserver.log.appender import Appender
from homeserver.log.followers import Followers
from homeserver.log.positions import FollowerPositions
from homeserver.log.rules import ChainRules
from homeserver.media.service import MediaService
from homeserver.media.storage import MediaStore
from homeserver.metrics import Metrics, Sampled
from homeserver.moderation import rules as moderation_rules
from homeserver.moderation.mute_expiry import MuteExpiry
from homeserver.moderation.mutes import MuteService
from homeserver.moderation.report_queue import ReportQueue
from homeserver.moderation.reports import ReportService
from homeserver.moderation.room_admin import RoomAdministration
from homeserver.moderation.room_deletion import RoomDeletions
from homeserver.moderation.shadow_bans import ShadowBanService
from homeserver.presence.service import create_presence_service
from homeserver.profiles import rules as profile_rules
from homeserver.profiles.directory import UserDirectoryService
from homeserver.profiles.service import ProfileService
from homeserver.push.counts import NotificationCounter
from homeserver.push.delivery import Delivery
from homeserver.push.gateway.apns import ApnsSettings
from homeserver.push.gateway.fcm import FcmSettings
from homeserver.push.gateway.service import PushGateway
from homeserver.push.pruning import NotificationPruner
from homeserver.push.sender import PushFollower
from homeserver.push.service import NotificationService, PusherService, PushRuleService
from homeserver.ratelimit.buckets import Buckets, Limit
from homeserver.ratelimit.limiter import Action, ExemptUsers, RateLimiter
from homeserver.ratelimit.local import LocalBuckets
from homeserver.ratelimit.postgres import postgres_buckets
from homeserver.ratelimit.redis import RedisBuckets
from homeserver.receipts.service import ReceiptService
from homeserver.roles.ladder import RoleLadder
from homeserver.roles.service import RoleService
from homeserver.rooms import chain_rules
from homeserver.rooms.rendering import EventRenderer
from homeserver.rooms.service import RoomService
from homeserver.rooms.upgrade import RoomUpgrader
from homeserver.search.directory import RoomDirectoryService
from homeserver.search.service import SearchService
from homeserver.store.database import create_pool, is_unavailable
from homeserver.store.migrate import migrate
from homeserver.sync.filters import FilterService
from homeserver.sync.history import HistoryService
from homeserver.sync.legacy import LegacySync
from homeserver.sync.notifier import CHANNEL as STREAM_CHANNEL
from homeserver.sync.notifier import Notifier
from homeserver.sync.recent import RecentEvents
from homeserver.sync.service import SyncService
from homeserver.to_device.service import ToDeviceService
from homeserver.typing_notices.service import create_typing_service

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMISSION = web.AppKey("admission", Admission)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
}


def _error_response(error: MatrixError) -> web.Response:
    response = ok(error.body(), status=error.status)
    response.headers.update(error.headers)
    return response


def _http_error(error: web.HTTPException) -> MatrixError:
    if isinstance(error, web.HTTPNotFound):
        return MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
    if isinstance(error, web.HTTPMethodNotAllowed):
        return MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request method")
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        return MatrixError(413, "M_TOO_LARGE", "Request body is too large")
    return MatrixError(error.status, "M_UNKNOWN", error.reason)


# Request IDs: a random prefix per process and a counter; unique without a
# call into the OS's random source per request.
_REQUEST_ID_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count(1)


def _next_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):08x}"


@web.middleware
async def serve_matrix(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request IDs, CORS, metrics, and every error rendered as a Matrix error."""
    offered = request.headers.get("X-Request-ID")
    request_id = logs.accepted_request_id(offered) or _next_request_id()
    requests = request.app[METRICS].requests
    token = logs.request_id.set(request_id)
    started = time.perf_counter()
    requests.in_flight += 1
    admission = request.app[ADMISSION]
    admitted = False
    try:
        response: web.StreamResponse
        if request.method == "OPTIONS":
            response = web.Response(status=200)
        elif not admission.exempt(request.path) and not (admitted := admission.admit()):
            response = _error_response(unavailable("The server is busy; try again."))
        else:
            response = await _handle(request, handler)
        if not response.prepared:
            response.headers.update(CORS_HEADERS)
            response.headers["X-Request-ID"] = request_id
        resource = request.match_info.route.resource
        endpoint = resource.canonical if resource is not None else "unmatched"
        elapsed = time.perf_counter() - started
        requests.record(endpoint, request.method, response.status, elapsed)
        if response.status >= 500:
            log.error("%s %s -> %d", request.method, request.path, response.status)
        elif log.isEnabledFor(logging.DEBUG):
            # One line per request at DEBUG (no query string: it may carry a token).
            log.debug(
                "%s %s -> %d",
                request.method,
                request.path,
                response.status,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )
        return response
    finally:
        if admitted:
            admission.leave()
        requests.in_flight -= 1
        logs.request_id.reset(token)


async def _tag_prepared_response(request: web.Request, response: web.StreamResponse) -> None:
    """The request ID on responses a handler sends itself (a WebSocket's upgrade), which
    are on their way before the middleware sees them."""
    if (rid := logs.request_id.get()) is not None and "X-Request-ID" not in response.headers:
        response.headers["X-Request-ID"] = rid


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        # PostgreSQL text cannot hold U+0000, and no Matrix identifier, token or
        # parameter value contains it: refused here, no handler can let one through.
        if any("\x00" in value for value in request.match_info.values()):
            raise MatrixError(400, "M_INVALID_PARAM", "Path parameters may not contain U+0000.")
        if any("\x00" in name or "\x00" in value for name, value in request.query.items()):
            raise MatrixError(400, "M_INVALID_PARAM", "Query parameters may not contain U+0000.")
        return await handler(request)
    except MatrixError as error:
        return _error_response(error)
    except ValidationError as error:
        return _error_response(MatrixError(400, "M_BAD_JSON", validation_problem(error, "body")))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error_response(_http_error(error))
    except Exception as error:
        if is_unavailable(error):
            # PostgreSQL restarting or unreachable: the client tries again (a send
            # with the same transaction ID), and the pool reconnects meanwhile.
            log.warning(
                "database unavailable serving %s %s: %r", request.method, request.path, error
            )
            return _error_response(unavailable("The database is unavailable; try again."))
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return _error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))


def _metrics_listener(
    settings: MetricsListener, metrics: Metrics
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context serving `metrics` at GET /metrics on a listener of its own."""

    async def listen(app: web.Application) -> AsyncIterator[None]:
        metrics_app = web.Application()
        metrics_app[METRICS] = metrics
        metrics_app.router.add_routes(metrics_api.routes)
        runner = web.AppRunner(metrics_app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as error:
            await runner.cleanup()
            raise OSError(
                error.errno,
                f"metrics: cannot listen on {settings.host}:{settings.port}: {error.strerror}",
            ) from error
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.port)
        try:
            yield
        finally:
            await runner.cleanup()

    return listen


def _watch_sync(
    metrics: Metrics, notifier: Notifier, recent: RecentEvents, sync: SyncService
) -> None:
    """What the sync services count, on the metrics."""
    for metric in (
        Sampled(
            "counter",
            "homeserver_sync_wakeups",
            "Waiting syncs (long-polls and stream polls) woken by a committed change",
            (),
            lambda: [((), notifier.woken)],
        ),
        Sampled(
            "gauge",
            "homeserver_sync_waiting",
            "Syncs waiting for a change now (long-polls and streams)",
            (),
            lambda: [((), notifier.waiting)],
        ),
        Sampled(
            "counter",
            "homeserver_syncs",
            "Syncs built, by where their window was read: memory (the tail of the log) or"
            " database (a client further behind than the tail, or its own facts changed)",
            ("source",),
            lambda: [((source,), count) for source, count in sync.answered.items()],
        ),
        Sampled(
            "counter",
            "homeserver_sync_unread_counts",
            "Rooms whose unread counts syncs showed, by source: memory (kept for the"
            " device's stream, or moved on by the window's events) or database",
            ("source",),
            lambda: [((source,), count) for source, count in sync.unread_counts.items()],
        ),
        Sampled(
            "counter",
            "homeserver_sync_catchups",
            "Reads of the log into the in-memory tail by stream position: changes this"
            " process did not commit itself",
            (),
            lambda: [((), recent.catch_ups)],
        ),
        Sampled(
            "counter",
            "homeserver_sync_catchup_events",
            "Events read into the in-memory tail by catch-ups",
            (),
            lambda: [((), recent.caught_up_events)],
        ),
        Sampled(
            "counter",
            "homeserver_sync_batches_received",
            "Other processes' batches taken into the in-memory tail from the bus message"
            " itself, without reading the log",
            (),
            lambda: [((), recent.received)],
        ),
    ):
        metrics.add(metric)


def _gateway_app(app: FcmApp | ApnsApp) -> FcmSettings | ApnsSettings:
    if isinstance(app, FcmApp):
        return FcmSettings(
            app.project_id, app.service_account_file, app.data_only, app.base_url, app.token_url
        )
    return ApnsSettings(
        app.team_id,
        app.key_id,
        app.key_file,
        app.topic,
        app.sandbox,
        app.data_only,
        app.base_url,
    )


def _redis_client(url: str) -> aioredis.Redis | None:
    """The process's Redis client, or None without a Redis URL (one process, in memory)."""
    return aioredis.Redis.from_url(url, decode_responses=True) if url else None


def _watch_backpressure(metrics: Metrics, appender: Appender, admission: Admission) -> None:
    """The appender's queue and the requests in progress, and the requests refused
    because either was full."""
    metrics.add(
        Sampled(
            "gauge",
            "homeserver_requests_in_progress",
            "Requests being worked on, long-polls aside (limits.max_requests_in_progress at most)",
            (),
            lambda: [((), admission.in_progress)],
        )
    )
    metrics.add(
        Sampled(
            "gauge",
            "homeserver_append_queue_events",
            "Events waiting for the appender (limits.append_queue_events at most)",
            (),
            lambda: [((), appender.queued_events)],
        )
    )
    metrics.add(
        Sampled(
            "counter",
            "homeserver_requests_refused",
            "Requests refused with 503 because the server was overloaded, by reason",
            ("reason",),
            lambda: [
                (("append_queue_full",), appender.refused),
                (("requests_in_progress",), admission.refused),
            ],
        )
    )


def _bus(config: Config, redis: aioredis.Redis | None, dsn: str) -> Bus:
    """The bus `config` chooses (config.effective_bus says why that one)."""
    kind = config.effective_bus
    if kind == "redis" and redis is not None:
        return RedisBus(redis, config.server_name)
    if kind == "postgres":
        return PostgresBus(dsn)
    return LocalBus()


def build_chain_rules() -> ChainRules:
    """The appender's rules: rooms/ decides the shape of every chain, and each capability
    adds the rules of its own event types (and the facts they need)."""
    rules = ChainRules(chain_rules.authorize)
    device_rules.register(rules)
    friend_rules.register(rules)
    channel_rules.register(rules)
    profile_rules.register(rules)
    e2ee_rules.register(rules)
    email_rules.register(rules)
    moderation_rules.register(rules)
    admin_rules.register(rules)
    return rules


def create_mailer(config: Config) -> Mailer:
    """SMTP as configured, or, with no email.smtp_host, the log."""
    settings = config.email
    host = config.server_name.rpartition(":")[0] if "]" not in config.server_name else ""
    domain = host or config.server_name.split(":")[0]
    sender = settings.from_ or f"{settings.app_name} <noreply@{domain}>"
    if not settings.smtp_host:
        return LogMailer(sender)  # `run` says so at start-up (cli.py)
    return SmtpMailer(
        SmtpSettings(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_timeout_seconds,
        ),
        sender,
    )


def create_rate_limiter(
    config: Config, dsn: str = "", exemptions: ExemptUsers | None = None
) -> RateLimiter:
    """The configured limits: in Redis when one is configured, else in PostgreSQL
    (at `dsn`) for workers over the PostgreSQL bus, else in this process.

    Not on the shared Redis client: a check is on the path of every limited request,
    and on its own RESP connection (ratelimit/resp.py) it costs 16 µs of CPU where
    redis-py took 95.
    """
    settings = config.rate_limits
    limits = None
    if settings.enabled:
        limits = {
            action: Limit(limit.per_second, limit.burst)
            for action in Action
            for limit in [getattr(settings, action.value)]
        }
    buckets: Buckets = LocalBuckets()
    if config.redis.url:
        buckets = RedisBuckets(config.redis.url, config.server_name)
    elif config.effective_bus == "postgres" and dsn:
        buckets = postgres_buckets(dsn)
    return RateLimiter(limits, buckets, exemptions or ExemptUsers(config.admins))


def create_app(config: Config, dsn: str, *, sync_from_memory: bool = True) -> web.Application:
    """The application for `config`, talking to PostgreSQL at `dsn`. With
    `sync_from_memory=False` (for tests only) every sync is built from the database."""
    app = web.Application(
        middlewares=[serve_matrix], client_max_size=config.limits.max_request_bytes
    )
    app[METRICS] = Metrics()
    app[ADMISSION] = Admission(
        config.limits.max_requests_in_progress, config.limits.max_loop_lag_ms / 1000
    )
    app.on_response_prepare.append(_tag_prepared_response)
    app[SERVER_NAME] = config.server_name
    app[TRUSTED_PROXIES] = tuple(
        ipaddress.ip_network(proxy, strict=False) for proxy in config.listen.trusted_proxies
    )

    async def services(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(dsn, config.database.pool_min_size, config.database.pool_max_size)
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        # Loaded (a first key made, an interrupted rotation finished) now, then
        # re-read whenever `homeserver keys rotate` changes the files.
        key_path = config.effective_signing_key_path
        keys = LiveKeyRing(key_path, load_key_ring(key_path, config.server_name))
        # One Redis client for the bus, typing and presence: one pool of connections.
        # Rate limits keep a connection of their own (create_rate_limiter).
        redis = _redis_client(config.redis.url)
        if redis is not None:
            await redis.ping()
        bus = _bus(config, redis, dsn)
        app[METRICS].watch_bus(bus)
        appender = Appender(
            pool,
            keys,
            build_chain_rules(),
            max_event_bytes=config.limits.max_event_bytes,
            queue_events=config.limits.append_queue_events,
        )
        appender.add_listener(lambda batch: app[METRICS].record_batch(batch.events))
        _watch_backpressure(app[METRICS], appender, app[ADMISSION])
        recent = RecentEvents(pool)
        # Other processes take each batch's events from the bus message, not the log.
        notifier = Notifier(bus, recent, carry_events=config.effective_bus != "local")
        appender.add_listener(notifier.committed)
        recent.add_foreign_listener(appender.observe)
        appender.start()
        app[POOL] = pool
        app[APPENDER] = appender
        app[SIGNING_KEYS] = keys
        exemptions = ExemptUsers(config.admins)
        rate_limiter = create_rate_limiter(config, dsn, exemptions)
        app[RATE_LIMITER] = rate_limiter
        app[email_api.PUBLIC_BASEURL] = config.public_baseurl
        audit_trail = AuditTrail(pool, appender, config.server_name)
        app[AUDIT_TRAIL] = audit_trail
        server_admins = ServerAdmins(
            pool, config.admins, audit_trail, config.server_name, exemptions, bus
        )
        app[SERVER_ADMINS] = server_admins
        # Users' own rate limits, loaded into this process's limiter (admin/ratelimits.py).
        overrides = RateLimitOverrides(pool, audit_trail, exemptions, bus)
        app[admin_users_api.RATELIMIT_OVERRIDES] = overrides
        app[admin_reports_api.REPORT_QUEUE] = ReportQueue(pool, audit_trail)
        app[admin_shadow_bans_api.SHADOW_BANS] = ShadowBanService(
            pool, audit_trail, config.server_name
        )
        app[ACCOUNTS] = AccountService(
            pool,
            appender,
            config.server_name,
            RegistrationPolicy(
                config.registration.enabled,
                config.registration.min_password_length,
                config.registration.password_hash_cost,
            ),
            bus,
            rate_limiter,
        )
        email_service = EmailService(
            pool,
            appender,
            app[ACCOUNTS],
            create_mailer(config),
            Templates(config.email.template_dir, config.email.app_name),
            rate_limiter,
            EmailSettings(
                token_lifetime_ms=config.email.token_lifetime_seconds * 1000,
                registration_enabled=config.registration.enabled,
                require_email=config.registration.require_email,
                allowed_domains=tuple(config.registration.allowed_email_domains),
                inhibit_errors=config.email.request_token_inhibit_3pid_errors,
                public_baseurl=config.public_baseurl,
            ),
        )
        app[email_api.EMAILS] = email_service
        app[ACCOUNTS].threepids = email_service
        app[ACCOUNTS].registration_facts.append(email_service)
        app[ACCOUNTS].uia.add_stage(EmailIdentityStage(email_service))
        if config.registration.require_email == "required":
            app[ACCOUNTS].registration_flows.require(EMAIL_IDENTITY)
        elif config.registration.require_email == "optional":
            app[ACCOUNTS].registration_flows.offer(EMAIL_IDENTITY)
        # Registration tokens: the admin API always; the UIA stage when required.
        registration_tokens = RegistrationTokens(pool, audit_trail)
        app[registration_tokens_api.REGISTRATION_TOKENS] = registration_tokens
        app[registration_tokens_api.TOKENS_REQUIRED] = config.registration.require_token
        if config.registration.require_token:
            app[ACCOUNTS].uia.add_stage(RegistrationTokenStage(registration_tokens))
            app[ACCOUNTS].registration_flows.require(REGISTRATION_TOKEN)
        app[ACCOUNTS].registration_facts.append(registration_tokens)
        ladder = RoleLadder(**config.roles.model_dump())
        renderer = EventRenderer(pool)
        room_service = RoomService(
            pool,
            appender,
            config.server_name,
            renderer,
            room_type_levels={
                types.CHANNEL_ROOM_TYPE: lambda levels: channel_power_levels(levels, ladder)
            },
            draft_check=DeviceEventChecks(pool).checked,
            default_room_version=config.rooms.default_room_version,
        )
        app[roles_api.ROLES] = RoleService(pool, room_service, ladder)
        app[channels_api.CHANNELS] = ChannelService(pool, ladder)
        app[ROOMS] = room_service
        room_administration = RoomAdministration(
            pool, renderer, audit_trail, room_service, config.server_name
        )
        app[admin_rooms_api.ROOM_ADMINISTRATION] = room_administration
        room_deletions = RoomDeletions(
            pool, room_service, room_administration, audit_trail, config.server_name
        )
        app[admin_rooms_api.ROOM_DELETIONS] = room_deletions
        app[friends_api.FRIENDS] = FriendService(
            pool, appender, room_service, config.friends.requests_from
        )
        device_service = DeviceService(
            pool,
            appender,
            app[ACCOUNTS],
            room_service,
            config.server_name,
            DeviceSettings(config.devices.login_token_ttl_seconds, config.devices.command_level),
        )
        app[device_control_api.DEVICES] = device_service
        # Where the followers got to, told to whoever waits for one, in any process.
        follower_positions = FollowerPositions(bus)
        followers = Followers(
            pool,
            dsn,
            catch_up_seconds=config.followers.catch_up_seconds,
            lease_check_seconds=config.followers.lease_check_seconds,
            positions=follower_positions,
        )
        followers.add(CommandExpiry(pool, appender, device_service.system_user))
        mute_service = MuteService(pool, appender)
        app[mutes_api.MUTES] = mute_service
        followers.add(MuteExpiry(pool, mute_service))
        followers.add(
            PushFollower(
                pool,
                Delivery(pool, max_backoff_seconds=config.push.max_backoff_seconds),
                NotificationPruner(pool, kept_days=config.push.notifications_kept_days),
                max_event_age_ms=config.push.max_event_age_seconds * 1000,
            )
        )
        followers.add(
            EmailNotifier(
                pool,
                email_service,
                config.email.notif_delay,
                config.public_baseurl or f"http://{config.listen.host}:{config.listen.port}",
            )
        )
        # Woken by this process's commits at once, and by other processes' on the bus.
        appender.add_listener(lambda _batch: followers.wake())
        bus.subscribe(STREAM_CHANNEL, lambda _message: followers.wake())
        app[METRICS].watch_followers(followers.statuses)
        filter_service = FilterService(pool, appender)
        app[FILTERS] = filter_service
        app[HISTORY] = HistoryService(pool, renderer)
        app[search_api.SEARCH] = SearchService(pool, renderer)
        app[room_directory_api.ROOM_DIRECTORY] = RoomDirectoryService(pool, appender)
        receipt_service = ReceiptService(pool, appender)
        app[RECEIPTS] = receipt_service
        profile_service = ProfileService(pool, appender)
        app[profile_api.PROFILES] = profile_service
        threepids = AdminThreepids(email_service)
        deactivation = Deactivation(
            pool, appender, app[ACCOUNTS], room_service, profile_service, threepids
        )
        app[DEACTIVATION] = deactivation
        app[admin_users_api.USER_ADMIN] = UserAdmin(
            pool,
            app[ACCOUNTS],
            profile_service,
            server_admins,
            audit_trail,
            threepids,
            deactivation,
            config.server_name,
        )
        account_data_service = AccountDataService(pool, appender)
        app[account_data_api.ACCOUNT_DATA] = account_data_service
        push_rule_service = PushRuleService(pool, appender)
        app[push_rules_api.PUSH_RULES] = push_rule_service
        app[rooms.UPGRADES] = RoomUpgrader(
            pool,
            appender,
            room_service,
            account_data_service,
            user_state=[push_rule_service.copy_room_rules],
        )
        app[pushers_api.PUSHERS] = PusherService(pool, email_service.pushkey_for)
        app[reports_api.REPORTS] = ReportService(pool, appender, config.server_name)
        app[notifications_api.NOTIFICATIONS] = NotificationService(pool, renderer)
        gateway = PushGateway(
            {app_id: _gateway_app(settings) for app_id, settings in config.push.apps.items()}
        )
        gateway.start()
        app[push_gateway_api.PUSH_GATEWAY] = gateway
        app[user_directory_api.USER_DIRECTORY] = UserDirectoryService(
            pool, search_all_users=config.user_directory.search_all_users
        )
        shared_in_postgres = config.effective_bus == "postgres"
        typing_service = create_typing_service(
            pool, notifier, bus, redis, config.server_name, shared_in_postgres=shared_in_postgres
        )
        app[TYPING] = typing_service
        to_device_service = ToDeviceService(pool, notifier)
        app[TO_DEVICE] = to_device_service
        presence_service = create_presence_service(
            pool,
            notifier,
            bus,
            enabled=config.presence.enabled,
            idle_timeout_seconds=config.presence.idle_timeout_seconds,
            offline_timeout_seconds=config.presence.offline_timeout_seconds,
            max_room_members=config.presence.max_room_members,
            redis=redis,
            namespace=config.server_name,
            shared_in_postgres=shared_in_postgres,
        )
        appender.add_listener(lambda batch: presence_service.committed(batch.events))
        app[presence_api.PRESENCE] = presence_service
        # End-to-end encryption: keys, device lists (woken by this process's commits and
        # telling other processes on the bus), key counts and backups.
        device_lists = DeviceLists(pool, notifier)
        appender.add_listener(lambda batch: device_lists.committed(batch.events))
        key_service = KeyService(pool, appender, app[ACCOUNTS], KeyCounts(pool, bus, notifier))
        app[keys_api.E2EE_KEYS] = key_service
        app[keys_api.DEVICE_LISTS] = device_lists
        app[room_keys_api.BACKUPS] = BackupService(pool)
        sync_service = SyncService(
            pool,
            notifier,
            renderer,
            recent,
            NotificationCounter(pool, follower_positions),
            from_memory=sync_from_memory,
            receipts=receipt_service,
            account_data=account_data_service,
            typing=typing_service,
            presence=presence_service if config.presence.enabled else None,
            to_device=to_device_service,
            device_lists=device_lists,
            one_time_keys=key_service,
        )
        app[SYNC] = sync_service
        app[legacy_sync_api.LEGACY_SYNC] = LegacySync(pool, sync_service, renderer)
        _watch_sync(app[METRICS], notifier, recent, sync_service)
        media_files = MediaStore(config.effective_media_store_path)
        app[admin_media_api.MEDIA_ADMIN] = MediaAdmin(
            pool, audit_trail, media_files, config.server_name
        )
        app[media_api.MEDIA] = MediaService(
            pool,
            appender,
            config.server_name,
            media_files,
            notifier,
            rate_limiter,
            max_upload_bytes=config.media.max_upload_bytes,
            allow_unauthenticated_download=config.media.allow_unauthenticated_download,
        )
        await bus.start()
        await rate_limiter.start()
        await server_admins.copy.start()
        await overrides.copy.start()
        await typing_service.start()
        await presence_service.start()
        await sync_service.start()
        notifier.start()
        await email_service.adopt_admin_threepids()
        followers.start()
        yield
        await room_deletions.stop()
        await followers.stop()
        await follower_positions.close()
        await gateway.stop()
        await typing_service.stop()
        await presence_service.stop()
        await appender.stop()
        await device_lists.close()
        await notifier.close()
        await overrides.copy.stop()
        await server_admins.copy.stop()
        await rate_limiter.close()
        await bus.stop()
        if redis is not None:
            await redis.aclose()
        await pool.close()

    async def release_long_polls(app: web.Application) -> None:
        # SIGTERM: the listener is closed already; held long-polls answer now with
        # what they have, and writes in flight finish before the services stop.
        app[SYNC].release()

    app.on_shutdown.append(release_long_polls)

    async def watch_loop_lag(app: web.Application) -> AsyncIterator[None]:
        admission = app[ADMISSION]
        watcher = asyncio.create_task(admission.watch_lag()) if admission.max_lag else None
        yield
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    app.cleanup_ctx.append(watch_loop_lag)
    if config.metrics.enabled:
        # Before the services: a port already taken stops start-up before migrating.
        app.cleanup_ctx.append(_metrics_listener(config.metrics, app[METRICS]))
    app.cleanup_ctx.append(services)
    for module in (
        server,
        accounts,
        rooms,
        directory,
        sync,
        sync_stream,
        legacy_sync_api,
        filters_api,
        history_api,
        receipts_api,
        typing_api,
        to_device_api,
        push_rules_api,
        pushers_api,
        notifications_api,
        push_gateway_api,
        presence_api,
        search_api,
        room_directory_api,
        media_api,
        friends_api,
        blocks_api,
        roles_api,
        channels_api,
        profile_api,
        account_data_api,
        user_directory_api,
        device_control_api,
        email_api,
        keys_api,
        room_keys_api,
        reports_api,
        mutes_api,
        admin_server_api,
        admin_audit_api,
        admin_users_api,
        admin_media_api,
        registration_tokens_api,
        admin_reports_api,
        admin_rooms_api,
        admin_shadow_bans_api,
    ):
        app.router.add_routes(module.routes)
        app.router.add_routes(r0_routes(module.routes))
    return app
