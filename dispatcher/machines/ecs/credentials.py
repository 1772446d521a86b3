"""AWS credentials for signing, kept off the request path.

botocore's credential chain (environment, shared config, the ECS task role's container endpoint,
instance metadata) is resolved once, in a thread: it may read files and call a metadata
endpoint. Each request then takes frozen keys from memory. Temporary keys (a Fargate task role's
rotate) are refreshed the way botocore does: in the last 15 minutes before they expire a refresh
runs in the background while requests keep signing with the current keys (a failed advisory
refresh keeps them, botocore logs it); in the last 10 minutes requests wait for fresh keys, and a
failure is `Transient` (the call is retried with backoff). Whether a refresh is due is asked at
most every `CHECK_EVERY` seconds: botocore's check costs ~13 µs, a clock read a fraction of one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from dispatcher.machines.ecs.sigv4 import AwsKeys
from dispatcher.outbound.retry import Transient

ADVISORY_SECONDS = 15 * 60  # botocore's own windows (credentials._DEFAULT_*_REFRESH_TIMEOUT)
MANDATORY_SECONDS = 10 * 60
CHECK_EVERY = 5.0


class KeySource(Protocol):
    """Where a signer takes its keys: the credential chain (`AwsCredentials`), or a cell's assumed
    role (ecs/assume_role.py)."""

    async def keys(self) -> AwsKeys: ...


class NoCredentials(Exception):
    """The chain found no credentials at all: the operator must configure some."""


def default_chain() -> Any:
    """botocore's default credential chain: `Credentials`, `RefreshableCredentials` or None."""
    import botocore.session

    return botocore.session.get_session().get_credentials()


class AwsCredentials:
    def __init__(self, resolve: Callable[[], Any] = default_chain, *, clock: Callable[[], float] = time.monotonic):
        self._resolve = resolve
        self._clock = clock
        self._source: Any = None  # botocore credentials object, once resolved
        self._keys: AwsKeys | None = None
        self._checked_until = 0.0
        self._refreshing: asyncio.Task[AwsKeys] | None = None

    async def keys(self) -> AwsKeys:
        """Keys to sign with now. Raises `NoCredentials`, or `Transient` if they could not be had."""
        if self._keys is not None and self._clock() < self._checked_until:
            return self._keys
        if self._keys is not None and not self._due(MANDATORY_SECONDS):
            if self._due(ADVISORY_SECONDS):
                self._refresh()  # in the background; these keys are good for 10 more minutes
            else:
                self._checked_until = self._clock() + CHECK_EVERY
            return self._keys
        return await asyncio.shield(self._refresh())

    def _due(self, seconds: float) -> bool:
        refresh_needed = getattr(self._source, "refresh_needed", None)  # plain Credentials never expire
        return bool(refresh_needed(seconds)) if refresh_needed is not None else False

    def _refresh(self) -> asyncio.Task[AwsKeys]:
        """One refresh at a time; callers needing keys share it."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._fetch())
            self._refreshing.add_done_callback(_consume)
        return self._refreshing

    async def _fetch(self) -> AwsKeys:
        try:
            keys = await asyncio.to_thread(self._freeze)
        except NoCredentials:
            raise
        except Exception as exc:  # the container endpoint or IMDS failed, an STS refresh failed
            raise Transient(f"AWS credentials: {type(exc).__name__}: {exc}") from exc
        self._keys = keys
        # Also after a failed advisory refresh (botocore kept the old keys): the next try is
        # CHECK_EVERY seconds away, not on the very next request.
        self._checked_until = self._clock() + CHECK_EVERY
        return keys

    def _freeze(self) -> AwsKeys:
        """In a thread: resolve the chain once, then botocore refreshes as its windows say."""
        if self._source is None:
            self._source = self._resolve()
            if self._source is None:
                raise NoCredentials("no AWS credentials found (environment, config files, task role, instance role)")
        frozen = self._source.get_frozen_credentials()
        return AwsKeys(frozen.access_key, frozen.secret_key, frozen.token)


def _consume(task: asyncio.Task[AwsKeys]) -> None:
    """A background refresh's failure is seen by whoever awaits it, or by botocore's log: never
    'Task exception was never retrieved'."""
    if not task.cancelled():
        task.exception()
