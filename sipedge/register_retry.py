"""When the edge registers a trunk again after its registrar refused: what PJSUA does not retry itself.

PJSUA schedules a new REGISTER only after a timeout or a server's trouble (408, 480, 500, 502, 503, 504
and any 6xx: pjsua_acc.c `regc_cb`), every `retryIntervalSec` (the edge's REGISTER_RETRY_SECONDS). Any
other refusal (403 Forbidden, 404 Not Found, a 401 its credentials could not answer) ends the account's
registration until something registers it again: without this, a trunk refused once (its registrar's
misconfiguration, since fixed) would take no inbound call until the edge restarted. The edge asks again
itself, slowly (a registrar that refuses us is not to be hammered): 30 s, doubling up to 30 minutes, never
sooner than the answer's Retry-After, and from 30 s again once a REGISTER succeeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 30 * 60.0
# The final answers PJSUA retries on its own (pjsua_acc.c regc_cb; 6xx too): the edge leaves those to it.
PJSUA_RETRIES = frozenset({408, 480, 500, 502, 503, 504})
_RETRY_AFTER = re.compile(r"^retry-after[ \t]*:[ \t]*(\d+)", re.IGNORECASE | re.MULTILINE)


def pjsua_retries(code: int) -> bool:
    return code in PJSUA_RETRIES or 600 <= code < 700


def retry_after(message: str) -> float | None:
    """The seconds a response's Retry-After asks for (RFC 3261 20.33: delta-seconds, then an optional comment
    and parameters), read from its head; None where it has none (or there is no response: a timeout)."""
    head = message.replace("\r\n", "\n").split("\n\n", 1)[0]
    found = _RETRY_AFTER.search(head)
    return float(found.group(1)) if found else None


def backoff(failures: int, asked: float | None = None) -> float:
    """The wait before the edge's `failures`-th REGISTER in a row after a refusal: doubling from the base up to
    the cap, and at least what the registrar asked (Retry-After), which the cap bounds as well."""
    doubling = RETRY_BASE_SECONDS * float(1 << min(max(failures - 1, 0), 16))
    return min(RETRY_CAP_SECONDS, max(doubling, asked or 0.0))


@dataclass
class RegisterRetry:
    """One registering account's refusals in a row, and the retry it has pending (its `generation`: a retry
    scheduled before a later answer is stale when it comes due)."""

    failures: int = 0
    generation: int = 0

    def answered(self, code: int, message: str = "") -> float | None:
        """The registrar's final answer to a REGISTER (`message`: the response as received): the seconds until
        the edge registers again itself, or None (registered, or a failure PJSUA retries on its own)."""
        self.generation += 1  # whatever was pending is superseded by this answer
        if 200 <= code < 300:
            self.failures = 0
            return None
        if code < 200 or pjsua_retries(code):
            return None
        self.failures += 1
        return backoff(self.failures, retry_after(message))

    def due(self, generation: int) -> bool:
        """Whether a retry scheduled at `generation` still stands (no answer came since)."""
        return generation == self.generation
