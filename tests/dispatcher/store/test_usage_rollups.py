"""Usage rollups in a real redis-server, as two replicas see them: a session's end added once
wherever it is reported again, the sums every replica reads alike, a day's fields bounded and each day
expiring after the days kept; the same rules in one process's memory."""

from __future__ import annotations

from datetime import date

import pytest

import dispatcher.usage.rollups as rollups_module
from dispatcher.store.client import Store
from dispatcher.usage.rollups import OTHER, Amount, MemoryRollups, SessionUse, StoreRollups
from tests.dispatcher.store.conftest import settings_for

DAY = date(2026, 11, 27)


def use(session_id: str, key: str = "acme", model: str = "llm:gpt-4o-mini", usd: float = 0.25) -> SessionUse:
    return SessionUse(session_id, DAY, key, "v1", (Amount("", "sessions", 1.0), Amount("", "seconds", 90.0),
                                                  Amount(model, "usd", usd), Amount(model, "prompt_tokens", 100.0)))


async def test_two_replicas_add_each_session_once_and_read_one_total(redis, prefix, admin) -> None:
    a, b = (Store(settings_for(redis, name, prefix)) for name in ("r-a", "r-b"))
    try:
        here, there = StoreRollups(a, keep_days=400), StoreRollups(b, keep_days=400)
        assert await here.add(use("s1")) is True
        assert await there.add(use("s1")) is False  # the same end, reported again at another replica
        assert await there.add(use("s2", key="globex")) is True
        seen_here, seen_there = await here.days(DAY, DAY), await there.days(DAY, DAY)
        assert seen_here == seen_there
        sums = seen_here[DAY]
        assert sums[("acme", "v1", "", "sessions")] == 1.0
        assert sums[("acme", "v1", "llm:gpt-4o-mini", "usd")] == pytest.approx(0.25)
        assert sums[("globex", "v1", "", "seconds")] == 90.0
        ttl = await admin.pttl(f"{prefix}usage:{DAY.isoformat()}")
        assert 400 * 86_400_000 < ttl <= 401 * 86_400_000  # the day expires after the days kept
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("backend", ["store", "memory"])
async def test_a_days_fields_are_bounded_new_models_past_it_summed_as_other(backend, redis, prefix,
                                                                            monkeypatch) -> None:
    monkeypatch.setattr(rollups_module, "MAX_FIELDS", 6)
    store = Store(settings_for(redis, "r-solo", prefix))
    try:
        rollups = StoreRollups(store, keep_days=30) if backend == "store" else MemoryRollups(keep_days=30)
        for n in range(5):  # a bot naming a new model each call
            assert await rollups.add(use(f"s{n}", model=f"llm:model-{n}", usd=1.0))
        sums = (await rollups.days(DAY, DAY))[DAY]
        distinct = {field for field in sums if field[2] not in ("", OTHER)}
        assert len(distinct) <= 6
        assert sum(v for f, v in sums.items() if f[3] == "usd") == pytest.approx(5.0)  # nothing lost
        assert sums[("acme", "v1", OTHER, "usd")] > 0
        assert sums[("acme", "v1", "", "sessions")] == 5.0
    finally:
        await store.aclose()


async def test_a_query_spans_at_most_the_bound() -> None:
    with pytest.raises(ValueError, match="400"):
        await MemoryRollups(keep_days=400).days(date(2025, 1, 1), date(2026, 11, 27))
