"""A refused session as a SIP answer a carrier fails over on (RFC 3261 §21): the key's own limit
(HTTP 429: its rate, its share of calls) is `486 Busy Here`; a number pinned to a release the
dispatcher does not have (HTTP 422 `unknown_release`) is `500 Server Internal Error` without
`Retry-After`: a 5xx, so the trunk still tries its next route for this call, yet no Retry-After, so
a carrier does not mark the whole edge down for its other numbers (RFC 3261 §21.5.4: a 503 with
Retry-After says the server is out for that long), and not a 404, which says the number is served
nowhere and ends the call at the carrier. Anything else that stops the call before its bot is ready
(the dispatcher full, draining, unreachable, the bot's start failed, the key refused) is `503
Service Unavailable`, so the trunk tries its next route. 486 and 503 carry `Retry-After`: the
dispatcher's own, else DEFAULT_RETRY_SECONDS.

A call whose `X-Voicefleet-Eval` token the dispatcher refused (HTTP 403 `eval_token_refused`: forged,
expired, spent, another key's) is `603 Decline`, without Retry-After: a 6xx tells the trunk not to try
the call elsewhere (RFC 3261 §21.6), rightly, as every route reaches a dispatcher that refuses the same
token; a 503 would mark the edge down, a 403 be taken for a source no trunk allows, and the caller's
eval reads `sip_603` as its token refused. Only an eval sends the header, so a trunk's own calls never
meet it unless its caller forged one."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RETRY_SECONDS = 5
UNKNOWN_RELEASE = "unknown_release"
EVAL_TOKEN_REFUSED = "eval_token_refused"  # noqa: S105 - an error code


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
    if code == EVAL_TOKEN_REFUSED:
        return SipRefusal(603, None, f"{why}: the INVITE's X-Voicefleet-Eval token was refused")
    seconds = DEFAULT_RETRY_SECONDS
    if retry_after is not None and retry_after.strip().isdigit():
        seconds = max(1, int(retry_after.strip()))
    return SipRefusal(486 if status == 429 else 503, seconds, why)


def unavailable(why: str) -> SipRefusal:
    return SipRefusal(503, DEFAULT_RETRY_SECONDS, why)
