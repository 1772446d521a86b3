"""The keys' budget use a region tells its peers and adds to its own at a start: its own figure only
(never what it was told, which would count a session twice), a peer's minutes added to a start's
check in the ledger's one step, a silent peer's sessions at once forgotten after a minute while its
period sums stay, out-of-shape figures dropped, and one region of those that see each other pushing
a key's webhooks."""

from __future__ import annotations

import math
import time
from types import MappingProxyType

import pytest

from dispatcher.errors import ApiError
from dispatcher.regions.budget_use import FIELD, LIVE_KEEP_SECONDS, MAX_KEYS, PeerBudgetUse, parsed
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers
from dispatcher.sessions.budget_usage import LedgerUsage, field_of, fields_of
from dispatcher.sessions.budgets import Budgets
from dispatcher.store.budget_ledger import MemoryBudgetLedger

URLS = MappingProxyType({"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"})


def region(here: str, clock: list[float]) -> tuple[Peers, PeerBudgetUse, LedgerUsage, MemoryBudgetLedger, Budgets]:
    peers = Peers(Regions(here, URLS, b"k" * 32))
    told = PeerBudgetUse(peers, clock=lambda: clock[0])
    ledger, budgets = MemoryBudgetLedger(), Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=None)
    usage.other_regions = told
    budgets.limit({"budget.acme.minutes-day": 10, "budget.acme.sessions": 3})
    return peers, told, usage, ledger, budgets


async def used_minutes(ledger: MemoryBudgetLedger, session_id: str, minutes: float) -> None:
    ended = time.time()
    await ledger.open("acme", session_id, ended - minutes * 60)
    await ledger.close("acme", session_id, ended, 0.0, fields_of(ended))


async def test_a_peers_minutes_are_added_to_the_check_and_each_region_tells_only_its_own() -> None:
    clock = [100.0]
    eu_peers, _, eu_usage, eu_ledger, _ = region("eu", clock)
    us_peers, _, us_usage, us_ledger, us_budgets = region("us", clock)
    await used_minutes(eu_ledger, "s-eu", 6.0)
    await used_minutes(us_ledger, "s-us", 3.0)
    await eu_usage.refresh()
    await us_usage.refresh()
    now = time.time()
    for _ in range(2):  # told twice each way: what a region tells stays its own
        for peers, usage, peer in ((us_peers, eu_usage, "eu"), (eu_peers, us_usage, "us")):
            for listener in peers.answer_listeners:
                await listener(peers.by_name[peer], {FIELD: usage.shared(now)})
    today = field_of("minutes-day", now)
    assert eu_usage.shared(now)["acme"][today] == pytest.approx(6.0)
    assert us_usage.shared(now)["acme"][today] == pytest.approx(3.0)
    assert us_usage.used("acme", "minutes-day", now) == pytest.approx(9.0)

    await us_budgets.admit("acme", "s-2")  # 9 of 10 minutes: admitted, its session open at us
    await used_minutes(eu_ledger, "s-eu-2", 1.5)  # eu's use grows; us hears at its next poll
    await eu_usage.refresh()
    for listener in us_peers.answer_listeners:
        await listener(us_peers.by_name["eu"], {FIELD: eu_usage.shared(time.time())})
    with pytest.raises(ApiError) as refused:
        await us_budgets.admit("acme", "s-3")
    error = refused.value
    assert error.status == 429 and error.code == "over_budget"
    assert error.extra["used"] == pytest.approx(10.5, abs=0.1) and error.extra["used_in_other_regions"] == 7.5
    assert "across the regions (7.5 in the others" in error.message


async def test_a_silent_peers_sessions_expire_and_its_period_sums_stay() -> None:
    clock = [100.0]
    peers, told, _, _, _ = region("us", clock)
    today = field_of("minutes-day", time.time())
    await told.polled(peers.by_name["eu"], {FIELD: {"acme": {"sessions": 2, today: 4.5}}})
    clock[0] += LIVE_KEEP_SECONDS
    assert (told.used("acme", "sessions"), told.used("acme", today)) == (2.0, 4.5)
    clock[0] += 1
    assert (told.used("acme", "sessions"), told.used("acme", today)) == (0.0, 4.5)
    # An answer without it (a replica there not read yet): what the region told stands.
    await told.polled(peers.by_name["eu"], {"region": "eu"})
    assert told.used("acme", today) == 4.5
    await told.polled(peers.by_name["eu"], {FIELD: {}})  # read, and nothing used: told
    assert told.used("acme", today) == 0.0


def test_figures_out_of_shape_are_dropped() -> None:
    today = "minutes:day:2026-11-28"
    assert parsed(None) == parsed([1]) == parsed("acme") == {}
    found = parsed({"acme": {"sessions": 1, today: 2.5, "dollars:month:2026-11": -1, "minutes:week:1": 3,
                             "x" * 300: 1, "dollars:month:2026-12": math.nan, "minutes:month:2026-11": True},
                    "Not A Key": {"sessions": 1}, "beta": [1], "gamma": {"sessions": "1"}})
    assert found == {"acme": {"sessions": 1.0, today: 2.5}, "gamma": {}}
    assert len(parsed({f"k{n}": {"sessions": 1} for n in range(MAX_KEYS + 10)})) == MAX_KEYS


def test_one_region_of_those_that_see_each_other_pushes_a_keys_webhooks() -> None:
    clock = [100.0]
    eu, us = region("eu", clock)[0], region("us", clock)[0]
    for peers, peer in ((eu, "us"), (us, "eu")):
        peers.by_name[peer].reachable = True
    keys = [f"key-{n}" for n in range(20)]
    tellers = [(PeerBudgetUse(eu).tells(key), PeerBudgetUse(us).tells(key)) for key in keys]
    assert all(sum(pair) == 1 for pair in tellers) and {pair[0] for pair in tellers} == {True, False}
    eu.by_name["us"].reachable = False  # us unreachable from eu: eu pushes every key's itself
    assert all(PeerBudgetUse(eu).tells(key) for key in keys)


async def test_the_webhooks_push_the_deployments_figure() -> None:
    clock = [100.0]
    peers, told, usage, _, _ = region("us", clock)
    pushed: list[tuple[str, dict[str, object]]] = []
    usage.push = lambda _id, kind, data: pushed.append((kind, data))
    today = field_of("minutes-day", time.time())
    # eu told its 8.5 minutes, then stopped answering: they were used, so they still count.
    await told.polled(peers.by_name["eu"], {FIELD: {"acme": {today: 8.5}}})
    await usage.refresh()
    assert [(kind, data["used"], data["budget"]) for kind, data in pushed] == [
        ("key.budget.warning", 8.5, "minutes-day")]


async def test_a_replica_that_has_not_read_its_ledger_tells_nothing_and_what_its_region_told_stands() -> None:
    """A replica just started answers before its first read of the ledger: an empty figure would make
    the peers forget its region's minutes and spend, which count until their period ends."""
    clock = [100.0]
    eu_peers, _, eu_usage, eu_ledger, _ = region("eu", clock)
    us_peers, _, us_usage, _, _ = region("us", clock)
    await used_minutes(eu_ledger, "s-eu", 6.0)
    await eu_usage.refresh()
    now = time.time()
    listen = us_peers.answer_listeners
    for listener in listen:
        await listener(us_peers.by_name["eu"], {FIELD: eu_usage.shared(now)})
    _, _, restarted, _, _ = region("eu", clock)  # another replica of eu, not read yet
    assert restarted.shared(now) is None
    for listener in listen:
        await listener(us_peers.by_name["eu"], {})  # its answer leaves the field out
    assert us_usage.used("acme", "minutes-day", now) == pytest.approx(6.0)
