"""Typed, strict configuration: YAML file, then HOMESERVER_* environment overrides.

One pydantic model per section, defaults in the models. Every problem is
collected and reported at once, each naming where it came from and the dotted
key it concerns (``config.yaml: listen.port: must be at most 65535``), because
a typo should stop the server with a message, not start it with a default.

Relative paths (``data_dir``, ``signing_key_path``, ``media.store_path``) are
kept relative to the current working directory, not to the config file, as
Synapse does.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

ENV_PREFIX = "HOMESERVER_"
# Reserved for the test suite (HOMESERVER_TEST_DSN); never a config override.
TEST_ENV_PREFIX = "HOMESERVER_TEST_"

MiB = 1024 * 1024


class ConfigError(Exception):
    """Every problem found in a configuration, one readable line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


class Section(BaseModel):
    # strict: a quoted "8008" or a "yes" typed as a string is a mistake to
    # report, not something to coerce. Paths opt back into lax parsing because
    # YAML can only give us strings for them.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- sections ---------------------------------------------------------------


def _not_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


# An address to listen on.
Host = Annotated[str, AfterValidator(_not_empty)]


class Listen(Section):
    """Where the HTTP server listens."""

    host: Host = "127.0.0.1"
    port: int = Field(default=8008, ge=1, le=65535)
    # Peers whose X-Forwarded-For is believed: the reverse proxies in front.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        problems: list[str] = []
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                problems.append(f"{entry!r} is not an IP address or network like 10.0.0.0/8")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class MetricsListener(Section):
    """Prometheus metrics, served on a listener of their own, never on the client port."""

    enabled: bool = False
    host: Host = "127.0.0.1"
    port: int = Field(default=9000, ge=1, le=65535)


class Database(Section):
    """PostgreSQL connection; an empty DSN starts an embedded server in data_dir."""

    dsn: str = ""
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=20, ge=1)

    @field_validator("dsn")
    @classmethod
    def _dsn_is_postgres_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("postgres", "postgresql"):
            raise ValueError(
                "must be empty (embedded PostgreSQL) or a URL like postgresql://user@host/db"
            )
        return value

    @field_validator("pool_max_size")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("pool_min_size")
        if isinstance(minimum, int) and value < minimum:
            raise ValueError(f"must be at least database.pool_min_size ({minimum})")
        return value


class Redis(Section):
    """Redis for the cross-process bus; empty means one process, in-process bus."""

    url: str = ""

    @field_validator("url")
    @classmethod
    def _url_is_redis(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be empty (in-process bus) or a URL like redis://host:6379/0")
        return value


class Media(Section):
    """Uploaded files."""

    store_path: Path | None = Field(default=None, strict=False)
    max_upload_bytes: int = Field(default=50 * MiB, gt=0)
    # Off: a file's URI alone must not give away a private room's file.
    allow_unauthenticated_download: bool = False

    @field_validator("store_path", mode="before")
    @classmethod
    def _path_not_empty(cls, value: object) -> object:
        return _non_empty_path(value)


class Registration(Section):
    """Who may create accounts and with what passwords."""

    enabled: bool = True
    min_password_length: int = Field(default=0, ge=0)
    # scrypt's cost for new password hashes, as a power of two (N = 2**cost; 14: 16 MiB
    # and tens of ms a hash). Each hash keeps its own, so changing it never locks anyone
    # out. Lower only where guessing does not matter (a test suite), as Synapse's
    # bcrypt_rounds.
    password_hash_cost: int = Field(default=14, ge=8, le=20)
    # Registration needs a token an admin made (/_synapse/admin/v1/registration_tokens):
    # the m.login.registration_token UIA stage is in every flow.
    require_token: bool = False
    # required: every new account proves an email address (m.login.email.identity);
    # optional: a client may add one at sign-up; off: registration asks for none.
    require_email: Literal["required", "optional", "off"] = "off"
    # Domains whose addresses may sign up (and be added); empty: any.
    allowed_email_domains: list[str] = []

    @field_validator("allowed_email_domains")
    @classmethod
    def _domains_lower_case(cls, value: list[str]) -> list[str]:
        domains = [domain.strip().lower().rstrip(".") for domain in value]
        if any(not domain or "@" in domain for domain in domains):
            raise ValueError("each entry must be a domain like example.com")
        return domains


class Limits(Section):
    """Size limits on what clients send."""

    max_request_bytes: int = Field(default=1 * MiB, gt=0)
    max_event_bytes: int = Field(default=65536, gt=0)
    # Events waiting to be appended, per process; past it, writes get 503.
    append_queue_events: int = Field(default=1000, ge=1)
    # Requests worked on at once per process, long-polls aside; past it, 503.
    max_requests_in_progress: int = Field(default=200, ge=1)
    # Refuse while the event loop runs this late (ms); 0: off.
    max_loop_lag_ms: int = Field(default=0, ge=0)


class RateLimit(Section):
    """One action class's token bucket: a sustained rate and the burst above it."""

    per_second: float = Field(gt=0, allow_inf_nan=False)
    burst: int = Field(ge=1)


def _limit(per_second: float, burst: int) -> RateLimit:
    return RateLimit(per_second=per_second, burst=burst)


class RateLimits(Section):
    """Token buckets per requester (or IP address) and action class.

    The defaults are Synapse's (synapse/config/ratelimiting.py) or more generous.
    """

    enabled: bool = True
    message: RateLimit = _limit(0.2, 10)  # rc_message
    room_creation: RateLimit = _limit(0.016, 10)  # rc_room_creation
    join: RateLimit = _limit(0.1, 10)  # rc_joins.local
    invite: RateLimit = _limit(0.3, 10)  # rc_invites.per_issuer
    invite_recipient: RateLimit = _limit(0.003, 5)  # rc_invites.per_user
    # rc_login.address and .account are 0.003/5; 0.17 lets an office behind one
    # address, or a user setting up several devices, log in without a wait.
    login_address: RateLimit = _limit(0.17, 5)
    login_account: RateLimit = _limit(0.17, 5)
    failed_login: RateLimit = _limit(0.17, 3)  # rc_login.failed_attempts
    registration: RateLimit = _limit(0.17, 3)  # rc_registration
    threepid_token: RateLimit = _limit(0.003, 5)  # rc_3pid_validation
    # Synapse has no default limit on local uploads: a GiB at once, then 1 MiB/s.
    media_upload_bytes: RateLimit = _limit(float(MiB), 1024 * MiB)
    report: RateLimit = _limit(1.0, 5)  # rc_reports
    # Synapse limits neither: a client encrypting for a room asks for every device of
    # it at once. Enough for that, and for a room of thousands; not for a script that
    # drains everyone's one-time keys or floods the database with queries.
    key_query: RateLimit = _limit(10.0, 100)
    key_claim: RateLimit = _limit(100.0, 5_000)

    # `message: {burst: 20}` keeps message's own per_second, not a shared one;
    # `message:` with everything commented out is message's defaults.
    @model_validator(mode="before")
    @classmethod
    def _partial_limits_keep_their_defaults(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for key, value in data.items():
            field = cls.model_fields.get(key)
            if field is None or field.annotation is not RateLimit:
                continue
            default = field.default
            assert isinstance(default, RateLimit)
            if value is None:
                merged[key] = default.model_dump()
            elif isinstance(value, dict):
                merged[key] = {**default.model_dump(), **value}
        return merged


class Logging(Section):
    """Log output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"

    @field_validator("level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class Presence(Section):
    """Online/idle/offline tracking."""

    enabled: bool = True
    idle_timeout_seconds: int = Field(default=300, ge=1)
    offline_timeout_seconds: int = Field(default=30, ge=1)
    # Rooms larger than this (and broadcast channels) do not share presence.
    max_room_members: int = Field(default=100, ge=2)


# Canonical JSON integers, the range of a Matrix power level.
_MAX_LEVEL = 2**53 - 1


class Roles(Section):
    """Named roles of groups and channels: the Matrix power level each one stands for."""

    # At most 100, the level a room's creator gets, so a creator is an owner;
    # member at most 0, the level of everyone a room does not name.
    owner: int = Field(default=100, ge=-_MAX_LEVEL, le=100)
    admin: int = Field(default=75, ge=-_MAX_LEVEL, le=_MAX_LEVEL)
    moderator: int = Field(default=50, ge=-_MAX_LEVEL, le=_MAX_LEVEL)
    member: int = Field(default=0, ge=-_MAX_LEVEL, le=0)

    @model_validator(mode="after")
    def _strictly_ordered(self) -> Roles:
        # A user's role is the highest one whose level they reach: with two
        # roles on one level, or out of order, that would not be one role.
        if not self.owner > self.admin > self.moderator > self.member:
            raise ValueError(
                "levels must be strictly ordered: owner > admin > moderator > member"
                f" (got {self.owner}, {self.admin}, {self.moderator}, {self.member})"
            )
        return self


class Friends(Section):
    """Friend requests (/_linkchat/v1/friends)."""

    # anyone: any user of this server; shares_room: only users joined to a
    # room the target is joined to; nobody: friend requests are turned off.
    requests_from: Literal["anyone", "shares_room", "nobody"] = "anyone"


class Devices(Section):
    """Device rooms and commands (/_linkchat/v1/devices)."""

    # Lifetime of the single-use login token a device agent exchanges at POST /login.
    login_token_ttl_seconds: int = Field(default=120, ge=1, le=86_400)
    # Power level needed to send commands in a new device room, and the level a
    # grant gives: above the device's own (10), below its owner's (100).
    command_level: int = Field(default=50, ge=11, le=99)


class Followers(Section):
    """What reacts to the log (command expiry): each follower runs in one process at a time."""

    # Seconds between a follower's looks at the log when no commit woke it: a
    # safety net, since every commit wakes it (through Redis from other processes).
    catch_up_seconds: int = Field(default=30, ge=1, le=3600)
    # Seconds between a process's tries to take the lease of a follower another
    # process runs, and its checks that it still holds its own: a follower whose
    # process died is taken over within about this long.
    lease_check_seconds: int = Field(default=2, ge=1, le=60)


class Email(Section):
    """Sending mail: address validation, password resets and notification emails."""

    # Empty: no mail server; every email is written to the log in full instead.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # starttls: plain connection upgraded with STARTTLS (port 587); tls: TLS from the
    # first byte (port 465); none: no encryption (a relay on this machine).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    # The From: of every email; empty: "LinkChat <noreply@server_name>".
    from_: str = Field(default="", alias="from")
    # Seconds to give up on a mail server that does not answer.
    smtp_timeout_seconds: float = Field(default=30, gt=0, le=600, strict=False)
    # The product's name in emails.
    app_name: str = "LinkChat"
    # How long a validation link and code work, in seconds.
    token_lifetime_seconds: int = Field(default=3600, ge=1, le=7 * 86_400)
    # How long a message stays unread before a `kind: email` pusher mails it, in seconds.
    notif_delay: float = Field(default=600, ge=0, strict=False)
    # A directory whose files replace the built-in templates of the same name.
    template_dir: Path | None = Field(default=None, strict=False)
    # true: requestToken answers as if it sent a mail for an address that is unknown
    # (password reset) or already taken (registration), so nobody can use it to
    # learn who has an account (Synapse's request_token_inhibit_3pid_errors).
    request_token_inhibit_3pid_errors: bool = False

    @field_validator("template_dir", mode="before")
    @classmethod
    def _empty_dir_is_none(cls, value: object) -> object:
        return None if value == "" else value


class FcmApp(Section):
    """A built-in gateway app sending through Firebase Cloud Messaging (HTTP v1)."""

    kind: Literal["fcm"]
    # The Firebase project's ID (Project settings > General).
    project_id: str = Field(min_length=1)
    # The service account's JSON key file (Project settings > Service accounts).
    service_account_file: Path = Field(strict=False)
    # true: data messages only, never a visible notification (the app shows its own).
    data_only: bool = False
    # Where FCM is; tests point this at a local server. Default: Google's.
    base_url: str = "https://fcm.googleapis.com"
    # The OAuth2 token endpoint; empty: the service account file's token_uri.
    token_url: str = ""


class ApnsApp(Section):
    """A built-in gateway app sending through the Apple Push Notification service."""

    kind: Literal["apns"]
    # The Apple developer team's ID, and the ID of its APNs auth key (.p8).
    team_id: str = Field(min_length=1)
    key_id: str = Field(min_length=1)
    key_file: Path = Field(strict=False)
    # The app's bundle ID (apns-topic).
    topic: str = Field(min_length=1)
    # true: the development environment (apps built for debugging).
    sandbox: bool = False
    # true: background (content-available) pushes only, never an alert.
    data_only: bool = False
    # Where APNs is; empty: Apple's production or sandbox host. Tests point it elsewhere.
    base_url: str = ""


PushApp = Annotated[FcmApp | ApnsApp, Field(discriminator="kind")]


class Push(Section):
    """Push notifications: the follower that sends them, and the built-in gateway."""

    # Events older than this when the follower reaches them are counted but not
    # pushed (after a long outage, or when first started on an old log).
    max_event_age_seconds: int = Field(default=3600, ge=1)
    # The longest wait between two tries of a gateway that is down; tries go on
    # until it answers, however long that takes.
    max_backoff_seconds: int = Field(default=600, ge=1, le=86_400)
    # How long GET /notifications keeps a notification (Synapse keeps about a month);
    # older ones are deleted, and those unread still count in the rooms' badges.
    notifications_kept_days: int = Field(default=30, ge=1, le=3650)
    # The app IDs this server's own gateway (POST /_matrix/push/v1/notify) sends for.
    apps: dict[str, PushApp] = {}


class UserDirectory(Section):
    """Who POST /user_directory/search finds."""

    # false: users sharing a room with the searcher and members of public rooms
    # (the spec's minimum); true: every user of this server.
    search_all_users: bool = False


class Rooms(Section):
    """Rooms this server creates."""

    # The room version of a room created without `room_version` (and what
    # /capabilities names as the default): any stable version, 1 to 12. 11, since
    # version 12's room IDs (no server name) and creators' unlimited power are not yet
    # understood by every client, nor by the role ladder (roles/), which writes the
    # owner into m.room.power_levels; choose 12 once yours are ready for it.
    default_room_version: Literal["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"] = (
        "11"
    )


# --- top level --------------------------------------------------------------

# Matrix server name grammar: a DNS name, IPv4 literal or [IPv6] literal, then
# an optional port.
_SERVER_NAME = re.compile(r"^(?P<host>\[[^\]]*\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?$")
_DNS_NAME = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$")
# New-style user ID localparts (the spec's "user identifier" grammar); the only
# kind our registration creates, so an admin listed any other way is a typo.
_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")


def _server_name_problem(value: str) -> str | None:
    match = _SERVER_NAME.match(value)
    if match is None:
        return "must be a host name with an optional :port, like example.com or localhost:8448"
    host, port = match["host"], match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        return "port must be between 1 and 65535"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "bracketed host must be an IPv6 address"
        return None
    if len(host) > 255 or not _DNS_NAME.match(host):
        return "must be a host name with an optional :port, like example.com or localhost:8448"
    return None


def _non_empty_path(value: object) -> object:
    # Checked before conversion: Path("") silently means the working directory.
    if value == "":
        raise ValueError("must not be empty (use . for the working directory)")
    return value


class Config(Section):
    """The whole configuration. Build it with load_config()."""

    server_name: str = "localhost"
    public_baseurl: str = ""
    data_dir: Path = Field(default=Path("data"), strict=False)
    signing_key_path: Path | None = Field(default=None, strict=False)
    admins: list[str] = []
    # Server processes `run` starts on this machine, sharing listen.port
    # (SO_REUSEPORT) and the database; "auto": one per core.
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    # How the processes of one server tell each other of commits (bus/).
    bus: Literal["auto", "local", "postgres", "redis"] = "auto"
    # On SIGTERM: how long held long-polls, appends in flight and open
    # connections get before the process exits anyway.
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=600, strict=False)

    listen: Listen = Listen()
    metrics: MetricsListener = MetricsListener()
    database: Database = Database()
    redis: Redis = Redis()
    media: Media = Media()
    registration: Registration = Registration()
    limits: Limits = Limits()
    rate_limits: RateLimits = RateLimits()
    logging: Logging = Logging()
    presence: Presence = Presence()
    friends: Friends = Friends()
    roles: Roles = Roles()
    user_directory: UserDirectory = UserDirectory()
    rooms: Rooms = Rooms()
    devices: Devices = Devices()
    followers: Followers = Followers()
    push: Push = Push()
    email: Email = Email()

    # A section written with every key commented out (`redis:` alone) is
    # YAML null; it means "all defaults", not an error.
    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        sections = _sections()
        return {
            key: {} if value is None and key in sections else value for key, value in data.items()
        }

    @field_validator("metrics")
    @classmethod
    def _metrics_port_is_not_the_client_port(
        cls, metrics: MetricsListener, info: ValidationInfo
    ) -> MetricsListener:
        listen = info.data.get("listen")
        if not metrics.enabled or not isinstance(listen, Listen) or metrics.port != listen.port:
            return metrics
        wildcards = ("0.0.0.0", "::")
        if metrics.host == listen.host or metrics.host in wildcards or listen.host in wildcards:
            raise ValueError(
                f"port {metrics.port} is listen.port; metrics need a listener of their own"
            )
        return metrics

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_number_or_auto(cls, value: object) -> object:
        # From the environment a number arrives as text (the key also takes "auto").
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value

    @model_validator(mode="after")
    def _bus_fits_the_processes(self) -> Config:
        if self.bus == "redis" and not self.redis.url:
            raise ValueError("bus: redis needs redis.url")
        if self.bus == "local" and self.workers != 1:
            raise ValueError(
                "bus: local is one process's; with workers use auto, postgres or redis"
            )
        if self.bus in ("local", "postgres") and self.redis.url:
            raise ValueError(f"bus: {self.bus} with redis.url set; Redis is the bus when set")
        return self

    @property
    def worker_count(self) -> int:
        """`workers` as a number: "auto" is one per core this process may run on."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        return self.workers

    @property
    def effective_bus(self) -> Literal["local", "postgres", "redis"]:
        """Redis when configured; else PostgreSQL NOTIFY between several processes."""
        if self.bus != "auto":
            return self.bus
        if self.redis.url:
            return "redis"
        return "postgres" if self.worker_count > 1 else "local"

    @field_validator("server_name")
    @classmethod
    def _valid_server_name(cls, value: str) -> str:
        if (problem := _server_name_problem(value)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("public_baseurl")
    @classmethod
    def _valid_public_baseurl(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be empty or an http(s) URL like https://chat.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        # Stored without a trailing slash so callers can append "/_matrix/...".
        return value.rstrip("/")

    @field_validator("data_dir", "signing_key_path", mode="before")
    @classmethod
    def _paths_not_empty(cls, value: object) -> object:
        return _non_empty_path(value)

    @field_validator("admins")
    @classmethod
    def _admins_are_local_users(cls, value: list[str], info: ValidationInfo) -> list[str]:
        server_name = info.data.get("server_name")
        problems: list[str] = []
        for user_id in value:
            localpart, colon, server = user_id[1:].partition(":")
            if not user_id.startswith("@") or not colon or not localpart:
                problems.append(
                    f"{user_id!r} is not a user ID like @alice:{server_name or 'example.com'}"
                )
            elif not _LOCALPART.match(localpart):
                problems.append(f"{user_id!r}: localpart may only contain a-z 0-9 . _ = - / +")
            elif len(user_id) > 255:
                problems.append(f"{user_id!r} is longer than 255 characters")
            elif server_name is not None and server != server_name:
                # Not federated: a user of another server can never log in here.
                problems.append(f"{user_id!r} is not on this server ({server_name})")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def effective_signing_key_path(self) -> Path:
        """The server's ed25519 signing key file."""
        if self.signing_key_path is not None:
            return self.signing_key_path
        return self.data_dir / "signing.key"

    @property
    def effective_media_store_path(self) -> Path:
        """Directory holding uploaded media bytes."""
        if self.media.store_path is not None:
            return self.media.store_path
        return self.data_dir / "media"

    @property
    def embedded_postgres_dir(self) -> Path:
        """Data directory of the embedded PostgreSQL used when database.dsn is empty."""
        return self.data_dir / "postgres"


# --- loading ----------------------------------------------------------------

Loc = tuple[str | int, ...]


def default_config_path() -> Path:
    """config.yaml in the working directory if present, else config.sample.yaml."""
    path = Path("config.yaml")
    return path if path.exists() else Path("config.sample.yaml")


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read path (None: no file, defaults), apply HOMESERVER_* overrides, validate.

    Raises ConfigError listing every problem found.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    source = str(path) if path is not None else "(defaults)"

    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(path, problems)

    env_sources = _apply_environment(data, env, problems)

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = _error_loc(error)
            origin = _origin(loc, env_sources, source)
            problems.append(f"{origin}: {_dotted(loc)}: {_describe(error, loc)}")

    if problems or config is None:
        raise ConfigError(problems)
    return config


def check_config(path: Path | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem load_config would report; empty when the config is fine."""
    try:
        load_config(path, environ)
    except ConfigError as exc:
        return exc.problems
    return []


def override_workers(config: Config, value: str) -> Config:
    """`config` with `run --workers VALUE`, checked as the `workers` key is."""
    try:
        return Config.model_validate({**config.model_dump(), "workers": value})
    except ValidationError as exc:
        raise ConfigError(
            [f"--workers: {_describe(error, error['loc'])}" for error in exc.errors()]
        ) from None


def _read_yaml(path: Path, problems: list[str]) -> dict[str, Any]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(f"{name}: cannot read file: {reason}")
        return {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        loaded: object = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(f"{name}: invalid YAML: {_yaml_error(exc)}")
        return {}
    if loaded is None:  # empty file, or only comments
        return {}
    if not isinstance(loaded, dict):
        kind = "a list" if isinstance(loaded, list) else f"a {type(loaded).__name__}"
        problems.append(f"{name}: the top level must be a mapping of keys to values, not {kind}")
        return {}
    if root is not None:
        # PyYAML silently keeps the last of two equal keys; a duplicated key
        # is almost always an edit in the wrong place.
        for loc, line in _duplicate_keys(root, ()):
            problems.append(f"{name}: {_dotted(loc)}: duplicate key (again on line {line})")
    return loaded


def _yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem or exc.context or 'cannot parse'}{where}"
    return str(exc)


def _duplicate_keys(node: yaml.Node, loc: Loc) -> list[tuple[Loc, int]]:
    found: list[tuple[Loc, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                found.append(((*loc, key), key_node.start_mark.line + 1))
            seen.add(key)
            found.extend(_duplicate_keys(value_node, (*loc, key)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, (*loc, index)))
    return found


# --- environment overrides --------------------------------------------------


def _sections() -> dict[str, type[Section]]:
    return {
        name: annotation
        for name, field in Config.model_fields.items()
        if isinstance(annotation := field.annotation, type) and issubclass(annotation, Section)
    }


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """A section's fields by the key written in YAML (`email.from`, whose field is `from_`)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _apply_environment(
    data: dict[str, Any], environ: Mapping[str, str], problems: list[str]
) -> dict[Loc, str]:
    """Merge HOMESERVER_<SECTION>_<KEY> values into data; return loc -> variable name."""
    sections = _sections()
    top_level = {name: f for name, f in Config.model_fields.items() if name not in sections}
    valid_suffixes = [*top_level] + [
        f"{section}_{key}" for section, model in sections.items() for key in _keys(model)
    ]
    sources: dict[Loc, str] = {}

    for var in sorted(
        v for v in environ if v.startswith(ENV_PREFIX) and not v.startswith(TEST_ENV_PREFIX)
    ):
        raw = environ[var]
        suffix = var[len(ENV_PREFIX) :].lower()
        if suffix in top_level:
            value = _parse_env_value(var, raw, top_level[suffix].annotation, problems)
            if value is not _UNPARSEABLE:
                data[suffix] = value
                sources[(suffix,)] = var
            continue
        if suffix in sections:
            example = next(iter(_keys(sections[suffix])))
            problems.append(
                f"{var}: {suffix} is a section; set its keys one by one, "
                f"e.g. {ENV_PREFIX}{suffix.upper()}_{example.upper()}"
            )
            continue
        # Longest section first, so a section whose name contains "_" wins
        # over a shorter one it starts with.
        section = next(
            (s for s in sorted(sections, key=len, reverse=True) if suffix.startswith(s + "_")),
            None,
        )
        if section is None:
            problems.append(
                f"{var}: unknown setting {suffix!r}{_did_you_mean_env(suffix, valid_suffixes)}"
            )
            continue
        key = suffix[len(section) + 1 :]
        fields = _keys(sections[section])
        loc: Loc = (section, key)
        annotation = fields[key].annotation if key in fields else None
        if annotation is None and (nested := _nested_key(fields, key)) is not None:
            # HOMESERVER_RATE_LIMITS_MESSAGE_BURST: one key of a mapping in a section.
            loc, annotation = (section, *nested[0]), nested[1]
        if annotation is None:
            retired = _RETIRED_KEYS.get(loc)
            reason = retired or f"unknown key{_did_you_mean(key, list(fields))}"
            problems.append(f"{var}: {section}.{key}: {reason}")
            continue
        value = _parse_env_value(var, raw, annotation, problems)
        if value is _UNPARSEABLE:
            continue
        _set_at(data, loc, value)
        sources[loc] = var
    return sources


def _nested_key(fields: Mapping[str, Any], key: str) -> tuple[Loc, Any] | None:
    """(sub-section, key) and the key's type when `key` is `<sub-section>_<key>`."""
    for name, field in fields.items():
        model = field.annotation
        if (
            isinstance(model, type)
            and issubclass(model, BaseModel)
            and key.startswith(name + "_")
            and (inner := key[len(name) + 1 :]) in model.model_fields
        ):
            return (name, inner), model.model_fields[inner].annotation
    return None


def _set_at(data: dict[str, Any], loc: Loc, value: object) -> None:
    target = data
    for part in loc[:-1]:
        existing = target.get(str(part))
        if existing is None:
            existing = target[str(part)] = {}
        if not isinstance(existing, dict):
            return  # the file's value is not a mapping; validation reports it
        target = existing
    target[str(loc[-1])] = value


_UNPARSEABLE = object()


def _parse_env_value(var: str, raw: str, annotation: Any, problems: list[str]) -> object:
    # Text settings take the variable verbatim: DSNs, hosts and names must not
    # be reinterpreted as YAML (a server name "1:30" would become the int 90).
    if _takes_text(annotation):
        if raw == "" and _is_optional(annotation):
            return None  # unset: use the default derived from data_dir
        return raw
    if get_origin(annotation) is list and not raw.lstrip().startswith("["):
        # HOMESERVER_ADMINS=@a:example.com,@b:example.com
        return [item.strip() for item in raw.split(",") if item.strip()]
    if raw == "":
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problems.append(f"{var}: invalid YAML value: {_yaml_error(exc)}")
        return _UNPARSEABLE


def _takes_text(annotation: Any) -> bool:
    if annotation is str or annotation is Path:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(arg, str) for arg in get_args(annotation))
    if origin is Union or origin is types.UnionType:
        return any(_takes_text(arg) for arg in get_args(annotation) if arg is not type(None))
    return False


def _is_optional(annotation: Any) -> bool:
    origin = get_origin(annotation)
    return (origin is Union or origin is types.UnionType) and type(None) in get_args(annotation)


def _did_you_mean_env(suffix: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(suffix, valid, n=1)
    return f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""


# --- error rendering --------------------------------------------------------


def _error_loc(error: ErrorDetails) -> Loc:
    loc = tuple(error["loc"])
    if error["type"] == "invalid_key" and loc:
        # The last element is the offending mapping key, not a list index.
        return (*loc[:-1], str(loc[-1]))
    return loc


def _origin(loc: Loc, env_sources: Mapping[Loc, str], source: str) -> str:
    for length in range(len(loc), 0, -1):
        if (var := env_sources.get(loc[:length])) is not None:
            return var
    return source


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _fields_at(loc: Loc) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _did_you_mean(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "path_type": "must be a path",
    "list_type": "must be a list",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "invalid_key": "keys must be strings",
    "missing": "is required",
}


def _number(value: object) -> str:
    # Limits of float fields arrive as floats: "greater than 0", not "0.0".
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Keys that existed once: an operator's config may still have them.
_RETIRED_KEYS: dict[Loc, str] = {
    key: (
        "no longer used: limits are set per action, as"
        " rate_limits.<action>: {per_second, burst} (e.g. rate_limits.message,"
        " rate_limits.failed_login); config.sample.yaml lists them"
    )
    for key in (("rate_limits", "per_second"), ("rate_limits", "burst"))
}


# pydantic's error type for a bound -> how the message says it, and the bound's ctx key.
_BOUNDS = {
    "less_than_equal": ("at most", "le"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "greater_than": ("greater than", "gt"),
}


def _describe(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "extra_forbidden":
        if (retired := _RETIRED_KEYS.get(loc)) is not None:
            return retired
        return f"unknown key{_did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))}"
    if (bound := _BOUNDS.get(kind)) is not None:
        words, limit = bound
        return f"must be {words} {_number(ctx[limit])}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return _TYPE_MESSAGES.get(kind, error["msg"])
