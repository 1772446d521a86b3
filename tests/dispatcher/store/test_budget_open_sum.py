"""A key's open sessions counted and summed as they open and close (dispatcher/store/budget_open_sum.py),
on a real redis-server as the dispatcher's own store user: the kept record equals the open hash
after any run of opens, admissions, closes, cancels and ends never seen, through a store written by
the previous version and a replica of it still writing; admission reads no hash whole."""

from __future__ import annotations

import asyncio
import math
import secrets

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from dispatcher.store.budget_in_flight import InFlight
from dispatcher.store.budget_ledger import StoreBudgetLedger
from dispatcher.store.budget_open_sum import RECONCILE_SECONDS
from dispatcher.store.client import DEFAULT_PREFIX, Store
from tests.dispatcher.store.conftest import settings_for
from tests.support.redis_server import RedisServer

FIELDS = {"minutes:day:2026-11-27": "minutes", "dollars:month:2026-11": "dollars"}
FLIGHT = InFlight(0.01, 0.5, "counted:dollars:month:2026-11", "sessions:month:2026-11")
ROOMY = [("minutes-day", "minutes:day:2026-11-27", "minutes", 1e12)]  # a budget no run reaches
T0 = 1_795_000_000.0


def start_ms(start: str) -> int:
    return math.floor(float(start) * 1000 + 0.5)  # as the script rounds a start


async def kept_agrees(admin: Redis, prefix: str, *, required: bool = False) -> None:
    """The kept record (`required`: there is one) is the hash's count and sum to the millisecond."""
    starts = await admin.hgetall(f"{prefix}budget:open:acme")
    kept = await admin.hgetall(f"{prefix}budget:open-sum:acme")
    assert kept or not required
    if kept:
        assert int(kept["count"]) == len(starts)
        assert int(kept["since"]) == sum(start_ms(s) - int(kept["base"]) for s in starts.values())


STEP = st.tuples(st.sampled_from(["open", "admit", "close", "cancel", "old-open", "old-close", "upgrade"]),
                 st.integers(0, 7), st.floats(0, 86_400, allow_nan=False))


async def run(redis: RedisServer, steps: list[tuple[str, int, float]]) -> None:
    prefix = f"{DEFAULT_PREFIX}t-{secrets.token_hex(4)}:"
    store = Store(settings_for(redis, "r-solo", prefix))
    admin = Redis.from_url(redis.admin_url, decode_responses=True)
    ledger, hash_key = StoreBudgetLedger(store), f"{prefix}budget:open:acme"
    drifted, late = False, T0 + 2 * 86_400  # past any step's time: a read then reconciles
    try:
        for what, n, offset in steps:
            session, at = f"s-{n}", T0 + offset
            if what == "open":
                await ledger.open("acme", session, at)
            elif what == "admit":
                assert await ledger.admit("acme", session, at, ROOMY, FLIGHT) is None
            elif what == "close":
                await ledger.close("acme", session, at, 0.01, FIELDS)
            elif what == "cancel":
                await ledger.cancel("acme", session)
            elif what == "old-open":  # a replica of the previous version: the hash alone
                await admin.hset(hash_key, session, repr(at))
            elif what == "old-close":
                await admin.hdel(hash_key, session)
            else:  # a store written before the record was kept
                await admin.delete(f"{prefix}budget:open-sum:acme")
            drifted = drifted or what.startswith("old-")
            if not drifted:
                await kept_agrees(admin, prefix)
            starts = [float(s) for s in (await admin.hgetall(hash_key)).values()]
            if drifted:  # found at the latest by the reconcile time
                late += RECONCILE_SECONDS
            read = (await ledger.read(["acme"], late if drifted else T0))["acme"]
            assert read["sessions"] == len(starts)
            assert math.isclose(read["open_since"], sum(starts), abs_tol=1e-3 * (len(starts) + 1))
            drifted = False
            await kept_agrees(admin, prefix, required=True)
    finally:
        await admin.aclose()
        await store.aclose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=30))
def test_the_kept_count_and_sum_are_the_open_hashs_after_any_run(redis: RedisServer,
                                                               steps: list[tuple[str, int, float]]) -> None:
    asyncio.run(run(redis, steps))


async def hgetalls(admin: Redis) -> int:
    return int((await admin.info("commandstats")).get("cmdstat_hgetall", {}).get("calls", 0))


async def test_a_budgeted_start_reads_no_hash_whole_once_its_keys_sum_is_kept(store: Store, admin: Redis) -> None:
    ledger = StoreBudgetLedger(store)
    for n in range(50):
        await ledger.open("acme", f"s-{n}", T0 + n)
    assert await ledger.admit("acme", "s-50", T0 + 60, ROOMY, FLIGHT) is None  # the record computed once
    before = await hgetalls(admin)
    for n in range(51, 60):
        assert await ledger.admit("acme", f"s-{n}", T0 + 60, ROOMY, FLIGHT) is None
    assert await hgetalls(admin) == before
    read = (await ledger.read(["acme"], T0 + 60))["acme"]
    assert read["sessions"] == 60 and math.isclose(read["open_since"], sum(T0 + n for n in range(51)) + 9 * (T0 + 60))


async def test_a_drift_the_count_cannot_show_is_found_within_the_reconcile_time(store: Store, admin: Redis,
                                                                               prefix: str) -> None:
    # A replica of the previous version closed s-1 and opened s-2 in the hash alone: the same count.
    ledger = StoreBudgetLedger(store)
    await ledger.open("acme", "s-1", T0)
    assert (await ledger.read(["acme"], T0))["acme"]["open_since"] == T0
    await admin.hdel(f"{prefix}budget:open:acme", "s-1")
    await admin.hset(f"{prefix}budget:open:acme", "s-2", repr(T0 + 100))
    later = T0 + RECONCILE_SECONDS
    assert (await ledger.read(["acme"], later))["acme"]["open_since"] == T0 + 100
    await kept_agrees(admin, prefix, required=True)
