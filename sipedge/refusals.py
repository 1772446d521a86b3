"""A refused session as a SIP answer a carrier fails over on (RFC 3261 §21): the key's own limit
(HTTP 429: its rate, its share of calls) is `486 Busy Here`; anything else that stops the call
before its bot is ready (the dispatcher full, draining, unreachable, the bot's start failed, the
key refused) is `503 Service Unavailable`, so the trunk tries its next route. Both carry
`Retry-After`: the dispatcher's own, else DEFAULT_RETRY_SECONDS."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RETRY_SECONDS = 5


@dataclass(frozen=True)
class SipRefusal:
    status: int
    retry_after: int
    why: str  # for the edge's log: the dispatcher's error code, or what failed


def from_http(status: int, retry_after: str | None, code: str) -> SipRefusal:
    seconds = DEFAULT_RETRY_SECONDS
    if retry_after is not None and retry_after.strip().isdigit():
        seconds = max(1, int(retry_after.strip()))
    return SipRefusal(486 if status == 429 else 503, seconds, f"HTTP {status} {code}".strip())


def unavailable(why: str) -> SipRefusal:
    return SipRefusal(503, DEFAULT_RETRY_SECONDS, why)
