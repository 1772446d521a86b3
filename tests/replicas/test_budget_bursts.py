"""A key's budgets hold on a burst of starts spread over two real `python -m dispatcher` replicas on one
real redis-server: each start is checked and counted in one store script, a running start holds its
spend's reserve, a refusal quotes the ledger's own figure at once, and the spend a budget counts is
the one `GET /usage` bills (a warm bot's idle share included)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.replicas.conftest import TIMEOUT, greeted, replica_env
from tests.replicas.test_key_budgets import ADMIN_KEY, OTHER_KEY, TEAM_KEY, TOKEN, cli, start
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two real dispatchers, their bots and a redis-server

DOLLARS_PER_SECOND = 0.01  # the bots' machine, priced high enough to see a second of it
PER_MONTH = str(DOLLARS_PER_SECOND * 730 * 3600)  # RESERVE_HOT_DOLLARS_PER_MONTH for it
FARGATE_PER_MONTH = "36.04"  # a real machine's price: Fargate's 1 vCPU and 2 GB, a month
RESERVE_FLOOR = 60 * DOLLARS_PER_SECOND  # a start's spend reserve is at least a minute of its machine


def fleet(tmp_path: Path, store: RedisServer, per_month: str | None = PER_MONTH,
          **extra: str) -> Iterator[list[DispatcherProcess]]:
    """Two replicas on one store; `per_month` None: no machine price (local bots, as an unknown type)."""
    priced = {"RESERVE_HOT_DOLLARS_PER_MONTH": per_month} if per_month is not None else {}
    with ExitStack() as stack:
        replicas = []
        for n in range(2):
            (tmp_path / f"r{n}").mkdir()
            env = replica_env(store, str(tmp_path), f"r-{n}", DISPATCHER_API_KEYS=f"team:{TEAM_KEY},other:{OTHER_KEY}",
                              DISPATCHER_ADMIN_KEYS=ADMIN_KEY, BOT_CHANNEL_TOKEN=TOKEN, **priced, **extra)
            replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r{n}", env)))
        yield replicas


running = contextmanager(fleet)  # the fleet in a test's own `with`: stopped however the test ends


@pytest.fixture
def cold(tmp_path: Path, store: RedisServer) -> Iterator[list[DispatcherProcess]]:
    yield from fleet(tmp_path, store, RESERVE_MAX_IDLE="0")


@pytest.fixture
def warm(tmp_path: Path, store: RedisServer) -> Iterator[list[DispatcherProcess]]:
    """One idle bot for the deployment, greeted and idle a few seconds: a start claims it."""
    for replicas in fleet(tmp_path, store, RESERVE_MIN_IDLE="1", RESERVE_BUFFER="0", RESERVE_BURST="0"):
        wait_until(lambda: greeted(store) >= 1, "an idle bot greeted", timeout=60)
        time.sleep(3.0)  # its idle time, billed with the call that claims it
        yield replicas


def burst(replicas: list[DispatcherProcess], key: str, count: int) -> list[httpx.Response]:
    """`count` starts at once, alternating replicas."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda n: start(replicas[n % 2], key), range(count)))


def refusal(answers: list[httpx.Response]) -> dict[str, Any]:
    return next(a.json()["error"] for a in answers if a.status_code == 429)


def test_a_burst_over_both_replicas_admits_only_what_a_sessions_at_once_budget_allows(
        cold: list[DispatcherProcess]) -> None:
    cli(cold[0], "keys", "limit", "team", "--sessions", "2")
    wait_until(lambda: start(cold[1], OTHER_KEY).status_code == 201 and cold, "the fleet answering", timeout=30)
    time.sleep(2.0)  # the budget, carried within a second, applied at both
    answers = burst(cold, TEAM_KEY, 6)
    assert Counter(a.status_code for a in answers) == {201: 2, 429: 4}, [a.text for a in answers]
    error = refusal(answers)
    assert error["code"] == "over_budget" and error["budget"] == "sessions" and error["used"] == 2, error


def test_a_burst_over_both_replicas_holds_a_spend_reserve_for_each_start_running(
        cold: list[DispatcherProcess]) -> None:
    # Less room than one start's reserve: the first start admitted holds it, the others are refused,
    # though no start has ended (and so been priced) yet.
    cli(cold[0], "keys", "limit", "team", "--spend-month", str(RESERVE_FLOOR * 0.8))
    wait_until(lambda: start(cold[1], OTHER_KEY).status_code == 201 and cold, "the fleet answering", timeout=30)
    time.sleep(2.0)
    answers = burst(cold, TEAM_KEY, 8)
    assert Counter(a.status_code for a in answers) == {201: 1, 429: 7}, [a.text for a in answers]
    error = refusal(answers)
    assert error["budget"] == "spend-month" and error["used"] >= RESERVE_FLOOR, error


ROOM = 0.006  # dollars of spend left to the key: less than any start reserve below but the set one


@pytest.mark.parametrize(("per_month", "reserve", "admitted"), [
    (FARGATE_PER_MONTH, None, 1),  # by default: what a session can be billed at most as it starts
    (None, None, 1),  # no machine price (local bots, an unpriced GCE type or GPU): the services' bound still
    (None, "0.002", 3),  # BUDGET_START_RESERVE_USD a third of the room: three starts fit, not eight
], ids=["fargate-price", "no-price", "reserve-set"])
def test_a_burst_at_a_real_machine_price_or_none_admits_only_the_starts_the_room_holds_reserves_for(
        tmp_path: Path, store: RedisServer, per_month: str | None, reserve: str | None, admitted: int) -> None:
    # A minute of a real machine is a fraction of a cent (nothing without a price): a reserve of it
    # let all 8 starts at once into $0.006 of room.
    settings = {"BUDGET_START_RESERVE_USD": reserve} if reserve is not None else {}
    with running(tmp_path, store, per_month, RESERVE_MAX_IDLE="0", **settings) as replicas:
        cli(replicas[0], "keys", "limit", "team", "--spend-month", str(ROOM))
        wait_until(lambda: start(replicas[1], OTHER_KEY).status_code == 201 and replicas, "the fleet answering",
                   timeout=30)
        time.sleep(2.0)  # the budget, carried within a second, applied at both
        answers = burst(replicas, TEAM_KEY, 8)
        assert Counter(a.status_code for a in answers) == {201: admitted, 429: 8 - admitted}, [a.text for a in answers]
        error = refusal(answers)
        assert error["budget"] == "spend-month" and error["used"] >= ROOM, error
        assert error["reserved"] >= ROOM and "held for its sessions still running" in error["message"], error


def test_the_first_refusal_after_a_budget_is_set_quotes_what_the_key_uses(cold: list[DispatcherProcess]) -> None:
    here, there = cold
    assert start(here, TEAM_KEY).status_code == 201  # no budget yet: nothing of the key read anywhere
    cli(there, "keys", "limit", "team", "--sessions", "1")
    answer = start(there, TEAM_KEY)  # at once, at the replica that never saw the key's session
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["used"] == 1 and "1 of 1 sessions at once used" in error["message"], error


def usage_of(replica: DispatcherProcess, key: str) -> dict[str, Any]:
    answer = httpx.get(f"{replica.base_url}/usage?key={key}", timeout=TIMEOUT,
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["totals"])


def test_a_refusal_quotes_the_spend_get_usage_bills_a_warm_bots_idle_share_included(
        warm: list[DispatcherProcess]) -> None:
    here, there = warm
    started = start(here, TEAM_KEY)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    stopped = httpx.delete(f"{there.base_url}/sessions/{session_id}", timeout=TIMEOUT,
                           headers={"Authorization": f"Bearer {TEAM_KEY}"})
    assert stopped.status_code in (202, 204), stopped.text
    billed = wait_until(lambda: (u := usage_of(here, "team"))["sessions"] == 1 and u, "the session billed",
                        timeout=60, detail=here.log)
    assert billed["cost_usd"] > 0
    cli(there, "keys", "limit", "team", "--spend-month", "0")
    def refused_for_spend() -> dict[str, Any] | None:
        answer = start(here, TEAM_KEY)
        found: dict[str, Any] | None = answer.json()["error"] if answer.status_code == 429 else None
        return found if found is not None and found["used"] > 0 else None

    error = wait_until(refused_for_spend, "a start refused, quoting what the key spent", timeout=30)
    assert error is not None
    # What the invoice shows for the key, to the cent's ten-thousandth, not 14 % less.
    assert error["used"] == pytest.approx(billed["cost_usd"], abs=1e-4), (error, billed)
