"""Failures of external services (machines providers, Daily), and how the HTTP layer answers them.

Written once for every provider: `refusal()` turns a refused call into a stable `reason`
(`<provider>_unauthorized`, `_capacity`, `_rejected`), outbound/retry.py adds `_rate_limited`, `_throttled`
and `_unavailable`, and `as_api_error()` is the one mapping to an HTTP answer: 503 + `Retry-After`
when trying again later makes sense, else 502. `MachinesError` (machines/base.py) and `DailyError`
(media/daily.py) are siblings under `ProviderError`, so a room failure is never mistaken for a
machine's.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from dispatcher.api_error import ApiError

log = logging.getLogger("dispatcher.providers")

# Retry-After for a failure that carries no hint of its own.
DEFAULT_RETRY_AFTER = 2.0


class ProviderError(Exception):
    """An external call failed.

    `reason` is a short, stable label (used in metrics and error codes); `retry_after` is set
    when trying again later makes sense (throttling, capacity).
    """

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None,
                 nothing_sent: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        # The call never left (a sign-in that failed first): whatever it asked for was not made.
        self.nothing_sent = nothing_sent
        # What the caller may be told in place of the generic line: set only by errors whose words
        # are the dispatcher's own (a provider's name accounts, roles and task definitions).
        self.public_message: str | None = None


E = TypeVar("E", bound=ProviderError)


def refusal(
    error: type[E], provider: str, status: int | None, message: str, *, capacity_retry_after: float | None = None
) -> E:
    """A call the provider answered and refused (never retried: the same call would fail again).

    `status` is the HTTP status (None when the API has none); `capacity_retry_after` marks a
    refusal for want of capacity or quota, which may pass.
    """
    if capacity_retry_after is not None:  # the provider's own reason beats the status (GCE: 403 quota)
        return error(f"{provider}_capacity", message, retry_after=capacity_retry_after)
    if status in (401, 403):  # a credential or permission problem: the operator must act
        return error(f"{provider}_unauthorized", message)
    return error(f"{provider}_rejected", message)


def generic_message(exc: ProviderError) -> str:
    """What a caller is told of a provider's failure: its stable reason, never the provider's words."""
    if exc.public_message is not None:
        return exc.public_message
    hint = "; try again" if exc.retry_after is not None else ""
    return f"an external call failed ({exc.reason}){hint}; the dispatcher's log has the details"


def as_api_error(exc: BaseException) -> ApiError:
    """The HTTP answer for a failure on the way to a provider. Anything unexpected is logged
    with its traceback for the operator and answered as a retryable 503 (never a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ProviderError):
        # A hint to retry means a transient condition (throttled, at capacity): 503.
        status = 503 if exc.retry_after is not None else 502
        # What the provider said stays in the log: AWS's messages name accounts, roles and task
        # definitions, and an endpoint that echoes the request could carry the session token.
        log.warning("provider call failed (%s): %s", exc.reason, exc.message)
        return ApiError(status, exc.reason, generic_message(exc), retry_after=exc.retry_after)
    log.error("provider call failed: %r", exc, exc_info=exc)
    return ApiError(
        503, "provider_unavailable", "the machines provider failed; try again", retry_after=DEFAULT_RETRY_AFTER
    )
