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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

# StoreSettings and DEFAULT_PREFIX: read without redis-py (dispatcher/store/store_settings.py); callers import them here
from dispatcher.store.store_settings import DEFAULT_PREFIX as DEFAULT_PREFIX
from dispatcher.store.store_settings import StoreSettings as StoreSettings
from dispatcher.store.unavailable import StoreUnavailable as StoreUnavailable  # its callers import it here

if TYPE_CHECKING:  # redis-py only where a store is configured: a local start never loads it (its CPU)
    from redis.asyncio import Redis

log = logging.getLogger("dispatcher.store")
T = TypeVar("T")


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
        except _failures() as exc:  # evaluated only as an exception passes
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


def _failures() -> tuple[type[BaseException], ...]:
    """What a store call raises when the store does not answer (redis-py is loaded by then: a call ran)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


def connect(settings: StoreSettings, *, decode_responses: bool, max_connections: int | None = None,
            retries: int = 1) -> Redis:
    """A client on its own bounded pool; `decode_responses=False` for what must stay bytes (a
    call's audio frames, dispatcher/store/media_bus.py); `retries=0` for a subscription's
    (dispatcher/store/subscription.py)."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.maint_notifications import MaintNotificationsConfig

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
