"""Without a reserve no idle bot can ever take a session: a start quoted longer than the caller's
patience is refused before it is a session (no timeline, no admission slot, no launch)."""

from __future__ import annotations

import pytest

from dispatcher.errors import ApiError
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.ids import new_session_id
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.settings import Settings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines


async def test_an_impatient_start_without_a_reserve_is_refused_before_it_is_a_session() -> None:
    coordination = LocalCoordination()
    machines = ListedMachines([])
    service = SessionService(Settings(), machines, None, Metrics("memory"), coordination=coordination,
                             timeline=SessionTimeline(coordination.timelines, coordination.replica_id))
    try:
        with pytest.raises(ApiError) as refused:
            await service.start(caller="caller-key", idempotency_key="impatient-1", body={}, wait=False,
                                max_wait_seconds=0.01)
        assert refused.value.code == "cold_start_too_slow"
        assert "session_id" not in refused.value.extra  # no session was requested
        session_id = new_session_id("caller-key", "impatient-1")
        assert await coordination.timelines.read(session_id) == []  # nothing noted for it
    finally:
        await service.aclose()
