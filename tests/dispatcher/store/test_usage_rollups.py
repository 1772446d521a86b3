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
        seen_here, seen_there = (await here.grouped(DAY, DAY, "key", None),
                                 await there.grouped(DAY, DAY, "key", None))
        assert seen_here == seen_there
        assert seen_here["acme"]["sessions"] == 1.0 and seen_here["acme"]["m.usd"] == pytest.approx(0.25)
        assert seen_here["globex"]["seconds"] == 90.0 and seen_here[""]["sessions"] == 2.0  # "": the total
        assert (await here.grouped(DAY, DAY, "model", "acme")) == {
            "": {"sessions": 1.0, "seconds": 90.0, "m.usd": 0.25, "m.prompt_tokens": 100.0},
            "llm:gpt-4o-mini": {"m.usd": 0.25, "m.prompt_tokens": 100.0}}
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
        models = await rollups.grouped(DAY, DAY, "model", None)
        assert len(models) - 1 < 5 and models[OTHER]["m.usd"] > 0  # the models past the bound, as one
        assert sum(sums["m.usd"] for group, sums in models.items() if group) == pytest.approx(5.0)  # none lost
        assert models[""]["sessions"] == 5.0
    finally:
        await store.aclose()


async def test_a_query_spans_at_most_the_bound() -> None:
    with pytest.raises(ValueError, match="400"):
        await MemoryRollups(keep_days=400).grouped(date(2025, 1, 1), date(2026, 11, 27), "key", None)


@pytest.mark.parametrize("backend", ["store", "memory"])
async def test_a_model_name_holding_the_separator_stays_one_model(backend, redis, prefix) -> None:
    store = Store(settings_for(redis, "r-solo", prefix))
    try:
        rollups = StoreRollups(store, keep_days=30) if backend == "store" else MemoryRollups(keep_days=30)
        await rollups.add(use("s1", model="llm:odd\x1fname"))
        assert set(await rollups.grouped(DAY, DAY, "model", None)) == {"", "llm:odd\x1fname"}
    finally:
        await store.aclose()


@pytest.mark.parametrize("backend", ["store", "memory"])
async def test_one_keys_bots_naming_a_new_model_each_call_cannot_fold_other_keys_models(backend, redis, prefix,
                                                                                        monkeypatch) -> None:
    # A bot's report names its models: one key's bots naming a new one each call filled the day, and
    # every other key's new model was summed under OTHER from then on.
    monkeypatch.setattr(rollups_module, "MAX_KEY_MODEL_FIELDS", 4)  # two models' two measures
    store = Store(settings_for(redis, "r-solo", prefix))
    try:
        rollups = StoreRollups(store, keep_days=30) if backend == "store" else MemoryRollups(keep_days=30)
        for n in range(10):
            assert await rollups.add(use(f"noisy-{n}", key="noisy", model=f"llm:made-up-{n}", usd=1.0))
        assert await rollups.add(use("quiet-1", key="quiet", model="llm:gpt-4o-mini", usd=0.5))
        noisy = await rollups.grouped(DAY, DAY, "model", "noisy")
        assert set(noisy) == {"", "llm:made-up-0", "llm:made-up-1", OTHER}
        assert noisy[""]["m.usd"] == pytest.approx(10.0)  # none lost
        assert set(await rollups.grouped(DAY, DAY, "model", "quiet")) == {"", "llm:gpt-4o-mini"}
        assert (await rollups.grouped(DAY, DAY, "key", None))[""]["sessions"] == 11.0  # the count rows skipped
    finally:
        await store.aclose()
