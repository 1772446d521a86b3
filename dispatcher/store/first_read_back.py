"""A first-write-wins record whose write's reply may be lost: read back before anyone acts on the failure.

`FirstClaims.first` raises `StoreUnavailable` both when the store never got the write and when it applied it
and its reply was lost (a timeout, a connection reset after the `SET`). In the second case the record is
there, naming this writer: a caller that took the failure for "nothing recorded" would refuse its request
and leave behind a record that pins every later try to what this one named (a SIP edge that never got the
call). So a failed write is read back: the value there is the record (this writer's, or an earlier one's
that won), and an empty one is written again, a few times with backoff (docs/sip.md#several-edges).
"""

from __future__ import annotations

import asyncio

from dispatcher.store.coordination import FirstClaims
from dispatcher.store.memory import ClaimsFull
from dispatcher.store.unavailable import StoreUnavailable

TRIES = 3  # writes (each read back when its reply is lost) before the failure is the caller's
BACKOFF_SECONDS = (0.05, 0.2)  # between tries: a store blink, not an outage, is what this outlasts


async def first_read_back(records: FirstClaims, what: str, value: str, seconds: float) -> str:
    """`records.first(what, value, seconds)`, its lost reply recovered by reading the record back: the value
    recorded first. Raises the last `StoreUnavailable` when no try learns it (`ClaimsFull` at once: a full
    memory is not a lost reply)."""
    failure: StoreUnavailable | None = None
    for attempt in range(TRIES):
        if attempt:
            await asyncio.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1])
        try:
            return await records.first(what, value, seconds)
        except ClaimsFull:
            raise
        except StoreUnavailable as exc:
            failure = exc
        try:
            found = await records.held(what)
        except StoreUnavailable as exc:
            failure = exc
            continue
        if found is not None:
            return found  # the write landed (this value) or an earlier one won: either way, the record
    assert failure is not None  # noqa: S101 - every try failed
    raise failure
