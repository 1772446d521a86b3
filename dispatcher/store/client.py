"""The coordination store's connection: every call bounded in time, its health observed.

`REDIS_URL` names any Redis-protocol server (Valkey, Redis, ElastiCache, Memorystore; `rediss://`
for TLS). Each call runs under `REDIS_TIMEOUT_SECONDS`: a store that hangs costs a start that
much, never a stuck request. A failed call raises `StoreUnavailable` and marks the store
unhealthy until a call succeeds again; `/healthz` shows it (docs/replicas.md).

Connections come from one bounded pool (a burst waits for a free connection, at most the call's
timeout, rather than opening thousands), and redis-py retries a dropped connection once with a
short backoff before the call counts as failed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from dispatcher.settings import SettingsError
from dispatcher.store.message_seal import MIN_SECRET_CHARACTERS
from dispatcher.store.unavailable import StoreUnavailable as StoreUnavailable  # its callers import it here
from voicefleet_settings.read import setting_choice, setting_float, setting_int, setting_text

log = logging.getLogger("dispatcher.store")
T = TypeVar("T")

# One hash tag for every key: a cluster-mode store (ElastiCache Serverless, Memorystore for Valkey)
# keeps them in one slot, so the multi-key scripts run there unchanged.
DEFAULT_PREFIX = "{voicefleet}:"


@dataclass(frozen=True)
class StoreSettings:
    url: str = field(repr=False)  # may carry a password
    replica_id: str = ""
    timeout_seconds: float = 0.5
    lease_seconds: float = 15.0  # a replica's and a session owner's record outlive a silent replica this long
    max_connections: int = 64
    prefix: str = DEFAULT_PREFIX
    password: str | None = field(default=None, repr=False)  # REDIS_PASSWORD, from the secret store
    ca_certificate: str | None = None  # REDIS_CA_CERT: the server's CA (PEM), e.g. Memorystore's own
    auth: str = "password"  # REDIS_AUTH: "password" (in the URL or REDIS_PASSWORD) or "gcp-iam"
    # REDIS_MESSAGE_SECRET: signs what replicas send each other on the store (dispatcher/store/message_seal.py)
    message_secret: str = field(default="", repr=False)
    # REDIS_ACCEPTED_MESSAGE_SECRET: during a change of that secret, a second one opened, never sealed
    accepted_message_secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings | None:
        """None without `REDIS_URL`: one process, no store (the default, and local mode's)."""
        url = setting_text(env, "REDIS_URL")
        if not url:
            return None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("REDIS_URL must start with redis://, rediss:// (TLS) or unix://")
        replica_id = setting_text(env, "REPLICA_ID") or f"r-{secrets.token_hex(6)}"
        if not replica_id.replace("-", "").replace("_", "").isalnum() or len(replica_id) > 64:
            raise SettingsError("REPLICA_ID: at most 64 letters, digits, '-' or '_'")
        prefix = setting_text(env, "REDIS_KEY_PREFIX")
        auth = setting_choice(env, "REDIS_AUTH")
        message_secret = setting_text(env, "REDIS_MESSAGE_SECRET")
        if len(message_secret) < MIN_SECRET_CHARACTERS:
            # Without it a replica would act on whatever anyone who may PUBLISH on the store sends.
            raise SettingsError(f"REDIS_MESSAGE_SECRET must be set with REDIS_URL (at least {MIN_SECRET_CHARACTERS} "
                                "characters, the same at every replica): replicas sign what they send each other")
        accepted = setting_text(env, "REDIS_ACCEPTED_MESSAGE_SECRET")
        if accepted and (len(accepted) < MIN_SECRET_CHARACTERS or accepted == message_secret):
            raise SettingsError(f"REDIS_ACCEPTED_MESSAGE_SECRET must be at least {MIN_SECRET_CHARACTERS} characters "
                                "and differ from REDIS_MESSAGE_SECRET: the other secret of a change, opened only")
        ca = setting_text(env, "REDIS_CA_CERT") or None
        if ca is not None and "BEGIN CERTIFICATE" not in ca:
            raise SettingsError("REDIS_CA_CERT must hold PEM certificates")
        password = setting_text(env, "REDIS_PASSWORD") or None
        if auth == "password" and password is None and not _url_password(url):
            # On any host, loopback included: local bots are processes of this host, so a store on
            # loopback is reachable from every bot, and its password is all that keeps them out.
            raise SettingsError("REDIS_URL carries no password and REDIS_PASSWORD is not set: the store would "
                                "take whoever reaches it (a local bot reaches a loopback store); give it a password")
        return cls(
            url=url,
            replica_id=replica_id,
            timeout_seconds=setting_float(env, "REDIS_TIMEOUT_SECONDS"),
            lease_seconds=setting_float(env, "REDIS_LEASE_SECONDS"),
            max_connections=setting_int(env, "REDIS_MAX_CONNECTIONS"),
            prefix=prefix,
            password=password,
            ca_certificate=ca,
            auth=auth,
            message_secret=message_secret,
            accepted_message_secret=accepted,
        )


def _url_password(url: str) -> bool:
    """Whether the URL itself carries a password (`redis://user:pw@…`, `unix://…?password=…`)."""
    try:
        return bool(parse_url(url).get("password"))  # type: ignore[no-untyped-call]
    except ValueError:
        return False  # redis-py refuses it again, with its reason, at the first connection


@dataclass
class Health:
    ok: bool = True
    since: float = field(default_factory=time.time)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unreachable", "since": int(self.since), "error": self.error}


class Store:
    """A thin, timed wrapper around one `redis.asyncio.Redis` client."""

    def __init__(self, settings: StoreSettings, *, redis: Redis | None = None) -> None:
        self.settings = settings
        self.replica_id = settings.replica_id
        self.health = Health()
        self.redis = redis or connect(settings, decode_responses=True)

    def key(self, *parts: str) -> str:
        return self.settings.prefix + ":".join(parts)

    async def call(self, make: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Runs one store operation (a command, a pipeline, a script) within the timeout."""
        try:
            async with asyncio.timeout(timeout or self.settings.timeout_seconds):
                result = await make()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            raise StoreUnavailable(f"the store did not answer: {type(exc).__name__}") from exc
        if not self.health.ok:
            log.warning("store reachable again (after %.1fs)", time.time() - self.health.since)
            self.health = Health()
        return result

    def _failed(self, exc: BaseException) -> None:
        if self.health.ok:
            log.warning("store unreachable: %s: %s", type(exc).__name__, exc)
            self.health = Health(ok=False, error=type(exc).__name__)

    async def ping(self) -> bool:
        try:
            return bool(await self.call(self.redis.ping))
        except StoreUnavailable:
            return False

    async def aclose(self) -> None:
        await self.redis.aclose()


def connect(settings: StoreSettings, *, decode_responses: bool, max_connections: int | None = None,
            retries: int = 1) -> Redis:
    """A client on its own bounded pool; `decode_responses=False` for what must stay bytes (a
    call's audio frames, dispatcher/store/media_bus.py); `retries=0` for a subscription's
    (dispatcher/store/subscription.py)."""
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.url,
            max_connections=max_connections or settings.max_connections,
            timeout=settings.timeout_seconds,  # waiting for a free connection counts too
            socket_timeout=settings.timeout_seconds,
            socket_connect_timeout=settings.timeout_seconds,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=retries),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=30,
            decode_responses=decode_responses,
            # Whoever may publish on the store could send bytes that are not UTF-8: decoded strictly,
            # they would end this replica's subscription (and what comes next) rather than one message.
            # Replaced, they fail the message seal like any other forgery.
            encoding_errors="replace",
            # Nothing but HELLO as a connection signs in: no CLIENT SETINFO, no CLIENT MAINT_NOTIFICATIONS
            # (Redis Enterprise's): the stack's store user may run only what the dispatcher needs.
            driver_info=None,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
            **_credentials(settings),
        )
    )


def _credentials(settings: StoreSettings) -> dict[str, Any]:
    """How connections sign in and what TLS trusts, beyond what the URL says."""
    extra: dict[str, Any] = {}
    if settings.auth == "gcp-iam":
        from dispatcher.store.memorystore_iam import GcpIamCredentials

        extra["credential_provider"] = GcpIamCredentials()
    elif settings.password is not None:
        extra["password"] = settings.password
    if settings.ca_certificate is not None and settings.url.startswith("rediss://"):
        # The instance's own CA, which signs nothing else; its endpoint is an IP address that the
        # certificate does not name, so the name is not checked (the CA pins the server).
        extra |= {"ssl_ca_data": settings.ca_certificate, "ssl_check_hostname": False}
    return extra
