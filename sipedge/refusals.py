"""A refused session as a SIP answer a carrier fails over on (RFC 3261 §21): the key's own limit
(HTTP 429: its rate, its share of calls) is `486 Busy Here`; a number pinned to a release the
dispatcher does not have (HTTP 422 `unknown_release`) is `500 Server Internal Error` without
`Retry-After`: a 5xx, so the trunk still tries its next route for this call, yet no Retry-After, so
a carrier does not mark the whole edge down for its other numbers (RFC 3261 §21.5.4: a 503 with
Retry-After says the server is out for that long), and not a 404, which says the number is served
nowhere and ends the call at the carrier. Anything else that stops the call before its bot is ready
(the dispatcher full, draining, unreachable, the bot's start failed, the key refused) is `503
Service Unavailable`, so the trunk tries its next route. 486 and 503 carry `Retry-After`: the
dispatcher's own, else DEFAULT_RETRY_SECONDS."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RETRY_SECONDS = 5
UNKNOWN_RELEASE = "unknown_release"


@dataclass(frozen=True)
class SipRefusal:
    status: int
    retry_after: int | None
    why: str  # for the edge's log: the dispatcher's error code, or what failed


def from_http(status: int, retry_after: str | None, code: str, release: str | None = None) -> SipRefusal:
    """`release`: the one the start pinned (the number's, in the edge's file), named in the log."""
    why = f"HTTP {status} {code}".strip()
    if code == UNKNOWN_RELEASE:
        return SipRefusal(500, None, f"{why}: the number's release {release!r} (the edge's file) is not live there")
    seconds = DEFAULT_RETRY_SECONDS
    if retry_after is not None and retry_after.strip().isdigit():
        seconds = max(1, int(retry_after.strip()))
    return SipRefusal(486 if status == 429 else 503, seconds, why)


def unavailable(why: str) -> SipRefusal:
    return SipRefusal(503, DEFAULT_RETRY_SECONDS, why)
