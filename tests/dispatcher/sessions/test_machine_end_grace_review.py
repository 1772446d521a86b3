"""A hostile review of the handed-over machine ends (sessions/machine_end_grace.py): a sweep whose finaliser
failed (a store blip while the usage is added or `session.ended` is written) still removes the entry, so that
end is never counted nor pushed, though the lease is there to offer it again. A strict xfail until fixed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from dispatcher.sessions.machine_end_grace import LEASE_SECONDS, MachineEndGrace
from dispatcher.store.handed_over_ends import MemoryHandedOverEnds
from dispatcher.store.unavailable import StoreUnavailable

SESSION = "s-handed-1"


@pytest.mark.xfail(strict=True, reason="sweep() calls `done` whatever its finalisers did: a failed finalisation "
                   "removes the handed-over end, which no replica offers again")
async def test_a_handed_over_end_whose_finaliser_failed_is_offered_again_after_its_lease() -> None:
    now = [1_000.0]
    ends = MemoryHandedOverEnds(shared=True)  # the replicas' store's contract (store/handed_over_ends.py)

    async def timeline(session_id: str) -> list[dict[str, Any]]:
        return [{"event": "machine_ended", "at": 990.0, "state": "ended"}]

    grace = MachineEndGrace(timeline, ends, clock=lambda: now[0])
    tries: list[str] = []

    async def usage_then_blip(session_id: str, record: Mapping[str, Any]) -> None:
        tries.append(session_id)
        if len(tries) == 1:
            raise StoreUnavailable("the store failed over while the end was added")

    grace.finalisers.append(usage_then_blip)
    await ends.hand_over(SESSION, 997.0)  # a closing replica's, its grace over by now
    await grace.sweep()
    now[0] += LEASE_SECONDS + 1.0  # past the claim's lease: any replica's sweep may take it again
    await grace.sweep()
    assert tries == [SESSION, SESSION], "the failed finalisation was never tried again"
