"""An eval's session is left out of the cost sums in `/metrics` (dispatcher/sessions/cost_count.py):
the real timeline, count and metrics, two sessions of the same release that ended alike, one an eval's.
Its own cost stays in its `GET /sessions/{id}` (the same timeline, priced the same way)."""

from __future__ import annotations

import pytest

from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.cost import SessionCosts
from dispatcher.sessions.cost_count import CostCount
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.sessions.test_session_cost import FLY, sample


async def test_an_evals_session_is_not_in_the_cost_sums_a_callers_is() -> None:
    coordination = LocalCoordination()
    timeline = SessionTimeline(coordination.timelines, coordination.replica_id)
    metrics, costs = Metrics("fly"), SessionCosts("fly", FLY)
    count = CostCount(costs, timeline, metrics)
    timeline.listeners.append(count.timeline_event)
    for session_id, marked in (("a" * 24, {}), ("b" * 24, {"eval": True})):
        timeline.note(session_id, "requested", at=1000.0, release="next", release_chosen_by="key", **marked)
        timeline.note(session_id, "launched", at=1000.0)
        timeline.note(session_id, "ended", at=1060.0)
    await timeline.settled()
    await count.settled()
    shown = metrics.render({}).decode()
    assert sample(shown, 'voicefleet_session_machine_seconds_total{part="session",provider="fly",release="next"}') \
        == pytest.approx(60.0)  # the caller's minute alone
    one_minute = costs.of(await timeline.read("b" * 24), running=False)
    assert one_minute is not None and one_minute.total is not None
    assert sample(shown, 'voicefleet_session_cost_dollars_total{provider="fly",release="next"}') \
        == pytest.approx(one_minute.total)
    await timeline.aclose()
