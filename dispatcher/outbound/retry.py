"""Bounded retries for external calls: jittered exponential backoff, `Retry-After`, a deadline.

Every provider retries the same way: a call that fails transiently (429, 5xx, a dropped
connection, AWS `ThrottlingException`) raises `Transient`; `with_retries` sleeps and tries again
until it runs out of attempts OR of time, whichever comes first, then re-raises the last
`Transient` so the provider can turn it into a `MachinesError` with a `retry_after` hint.

A give-up reads "throttled" (`Transient.throttled`: a 429 made nothing) only when every try was
throttled: a try that got no answer, or a 5xx, may still have been served (a create: its machine
made late), so it makes the give-up `<provider>_unavailable` however the last try ended, and the
launch looks for that machine (dispatcher/machines/lost_creates.py). A try that never connected
(outbound/http_failure.py `never_connected`) sent nothing: a give-up with no try that may have been
served is `nothing_sent`, so nothing is looked for, and a caller may send it elsewhere. A call whose
last try the dispatcher could not make for want of its own descriptors or memory (http_failure.py
`exhausted`: a connection it could not open, nothing of the call sent), and no try of which may have
been served, gives up as `dispatcher_exhausted`, never the provider's: the provider was not asked, so
nothing may be concluded of it (a cell drained, a cluster taken for lost), and its caller is told why.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.outbound.http_failure import exhausted, never_connected
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.outbound.ratelimit import RateLimited, TokenBucket

T = TypeVar("T")
E = TypeVar("E", bound=ProviderError)
EXHAUSTED = "dispatcher_exhausted"  # a call the dispatcher could not make: its descriptors or memory spent

# Statuses worth another try: throttled, or the server (or a proxy in front of it) failed.
# 408 is Fly's "/wait timed out" and is handled by the caller, not retried here.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class Transient(Exception):
    """A failure that may pass: retry after `retry_after` seconds if the server said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None,
                 unsent: bool = False, exhausted: str | None = None):
        """`unsent`: the try never connected, so nothing of it reached the server; `exhausted`: why the
        dispatcher could not make it at all (its own descriptors or memory spent: it is unsent too)."""
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.unsent = unsent or exhausted is not None
        self.exhausted = exhausted
        # Set by `with_retries` on the failure it gives up with: the first earlier try's, when that
        # one may have been served and this last one was not.
        self.served_before: Transient | None = None

    @property
    def may_be_served(self) -> bool:
        """Whether the provider may have done this try's call after all: no answer, or a 5xx (the
        server may fail after doing it). Only a 429, or a try that never connected, says it did nothing."""
        return self.status != 429 and not self.unsent

    @property
    def throttled(self) -> bool:
        """Every try was throttled (429) but any that never connected: nothing the call asked for was done."""
        return self.status == 429 and self.served_before is None

    @property
    def nothing_sent(self) -> bool:
        """The last try never connected and no earlier one may have been served: nothing was done."""
        return self.unsent and self.served_before is None

    def account(self) -> str:
        """The give-up in words: the earlier try that may have been served first, then the last."""
        return f"{self.served_before}; then {self}" if self.served_before is not None else str(self)


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff (delays are uniform in [0, min(cap, base·2ⁿ)]).

    Full jitter spreads retries of many concurrent sessions so they do not hit a throttled API
    in lockstep. A server's `Retry-After` is a floor: retrying earlier is wasted.
    """

    attempts: int = 4
    base: float = 0.2
    cap: float = 5.0
    deadline: float = 10.0  # seconds for all attempts and sleeps together

    def delay(self, attempt: int, retry_after: float | None) -> float:
        jittered = random.uniform(0.0, min(self.cap, self.base * (2**attempt)))  # noqa: S311 - not crypto
        return max(jittered, retry_after or 0.0)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    before_retry: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """Run `call` until it returns; retry `Transient` failures within attempts and deadline. The
    failure given up with carries the first earlier one that may have been served (`served_before`).
    `before_retry`, awaited before each retry: False gives up with the last failure (a create whose
    retry finds no token left under the provider's limit)."""
    started = clock()
    attempt = 0
    served: Transient | None = None  # the first try that may have been served
    while True:
        try:
            return await call()
        except Transient as exc:
            if exc.may_be_served:
                served = served or exc
            elif served is not None:
                exc.served_before = served  # read if this try is the last
            attempt += 1
            if attempt >= backoff.attempts:
                raise
            delay = backoff.delay(attempt - 1, exc.retry_after)
            if clock() - started + delay > backoff.deadline:
                raise  # sleeping would blow the deadline: give up now, say when to come back
            await sleep(delay)
            if before_retry is not None and (not await before_retry() or clock() - started > backoff.deadline):
                raise  # no turn for it, or its wait for one took what was left of the deadline


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # `inf` (or 400 digits, which float() reads as inf) would overflow the Retry-After we answer
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """`headers` are an `HttpResponse`'s: case-insensitive, so one look-up finds any spelling."""
    return parse_retry_after(headers.get("retry-after"))


async def send(
    client: HttpClient,
    method: str,
    url: str,
    *,
    backoff: Backoff,
    timeout: float | None = None,
    final: Callable[[HttpResponse], bool] | None = None,
    before_retry: Callable[[], Awaitable[bool]] | None = None,
    **kwargs: Any,
) -> HttpResponse:
    """One HTTP call with retries on transport errors and `RETRYABLE_STATUSES` (`before_retry`: `with_retries`'s).

    Anything else (2xx, 4xx, 408), and a retryable answer `final` picks (one whose body says a retry would meet
    the same), is returned for the caller to interpret. Messages name the
    method and the target (scheme, host, path) only: never a header, a body or a query string (they
    may carry tokens).
    """
    path = urlsplit(url).path

    async def once() -> HttpResponse:
        try:
            response = await client.request(method, url, timeout=timeout, **kwargs)
        except HttpError as exc:  # connect/read timeouts, resets: the server may be fine
            unsent = never_connected(exc)
            # The dispatcher's own limit clears the far side only for a try of which nothing went out: a read
            # that failed for want of memory, or a redirect or re-send that could not connect, may have been served.
            raise Transient(f"{method} {exc.target or path}: {exc}", unsent=unsent,
                            exhausted=exhausted(exc) if unsent else None) from exc
        if response.status_code in RETRYABLE_STATUSES and not (final is not None and final(response)):
            raise Transient(
                f"{method} {path}: HTTP {response.status_code}",
                retry_after=retry_after_of(response.headers),
                status=response.status_code,
            )
        return response

    return await with_retries(once, backoff, before_retry=before_retry)


async def provider_request(
    provider: str,
    client: HttpClient,
    method: str,
    url: str,
    *,
    backoff: Backoff,
    bucket: TokenBucket | None = None,
    error: type[ProviderError],
    before_retry: Callable[[], Awaitable[bool]] | None = None,
    **kwargs: Any,
) -> HttpResponse:
    """`send` behind a client-side bucket (`before_retry`: `with_retries`'s); giving up becomes a
    `ProviderError` (`error`) with a stable reason (`<provider>_rate_limited`, `_throttled`, `_unavailable`)
    and a `retry_after`; `nothing_sent` when no try may have been served and the last never connected."""
    try:
        if bucket is not None:
            await bucket.acquire()
        return await send(client, method, url, backoff=backoff, before_retry=before_retry, **kwargs)
    except RateLimited as exc:
        raise error(f"{provider}_rate_limited", str(exc), retry_after=exc.retry_after) from None
    except Transient as exc:
        if exc.exhausted is not None and exc.nothing_sent:  # an earlier try that may have been served: not this
            raise exhausted_error(error, provider, exc.exhausted, f"{provider}: {exc.account()}") from None
        raise error(gave_up(provider, exc), f"{provider}: {exc.account()}",
                    retry_after=exc.retry_after or 1.0, nothing_sent=exc.nothing_sent) from None


def exhausted_error(error: type[E], provider: str, why: str, message: str) -> E:
    """The dispatcher could not call `provider` for want of its own resources (`why`): a 503 that says so, the
    provider never asked (`nothing_sent`: a launch sends it nowhere else, and no cell is drained for it)."""
    failed = error(EXHAUSTED, f"{message} (the dispatcher's own limit: {why})", retry_after=2.0, nothing_sent=True)
    failed.public_message = (f"the dispatcher could not reach {provider} ({why}: its own limit, not "
                             f"{provider}'s); retry in a moment")
    return failed


def gave_up(provider: str, exc: Transient) -> str:
    """The reason of a call given up after its retries: `<provider>_throttled` only when every try
    was throttled (nothing was done), else `<provider>_unavailable` (it may have been)."""
    return f"{provider}_throttled" if exc.throttled else f"{provider}_unavailable"


async def create_request(
    provider: str,
    client: HttpClient,
    method: str,
    url: str,
    *,
    backoff: Backoff,
    error: type[ProviderError],
    retry_throttled: Callable[[HttpResponse], bool] = lambda response: True,
    **kwargs: Any,
) -> HttpResponse:
    """A create with no idempotency key (Cloud Run's `jobs.run`, ARM's PUT): a 429 made nothing
    and is retried as `provider_request` does (unless `retry_throttled` says it is a quota, answered
    to the caller); a lost answer or a 5xx may have made the machine, so it is never sent again:
    `<provider>_unavailable` at once, for the launch to reconcile (machines/lost_creates.py)."""
    path = urlsplit(url).path

    async def once() -> HttpResponse:
        try:
            response = await client.request(method, url, **kwargs)
        except HttpError as exc:
            raise error(f"{provider}_unavailable", f"{provider}: {method} {exc.target or path}: {exc}",
                        retry_after=1.0) from exc
        if response.status_code == 429 and retry_throttled(response):
            raise Transient(f"{method} {path}: HTTP 429", retry_after=retry_after_of(response.headers), status=429)
        if response.status_code in RETRYABLE_STATUSES and response.status_code != 429:
            raise error(f"{provider}_unavailable", f"{provider}: {method} {path}: HTTP {response.status_code}",
                        retry_after=retry_after_of(response.headers) or 1.0)
        return response

    try:
        return await with_retries(once, backoff)
    except Transient as exc:
        raise error(f"{provider}_throttled", f"{provider}: {exc}", retry_after=exc.retry_after or 1.0) from None
