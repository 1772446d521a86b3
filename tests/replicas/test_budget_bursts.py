"""A key's budgets hold on a burst of starts spread over two real `python -m dispatcher` replicas on one
real redis-server: each start is checked and counted in one store script, a running start holds its
spend's reserve, a refusal quotes the ledger's own figure at once, and the spend a budget counts is
the one `GET /usage` bills (a warm bot's idle share included).

The tests on a fleet with no reserve (`cold`) share one: each limits a key of its own, so the
sessions one leaves running and the budgets it sets are no other's (a key's budget and usage are
counted by the key's name, dispatcher/sessions/budgets.py)."""

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
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two real dispatchers, their bots and a redis-server

DOLLARS_PER_SECOND = 0.01  # the bots' machine, priced high enough to see a second of it
PER_MONTH = str(DOLLARS_PER_SECOND * 730 * 3600)  # RESERVE_HOT_DOLLARS_PER_MONTH for it
FARGATE_PER_MONTH = "36.04"  # a real machine's price: Fargate's 1 vCPU and 2 GB, a month
RESERVE_FLOOR = 60 * DOLLARS_PER_SECOND  # a start's spend reserve is at least a minute of its machine


# The `cold` fleet's tests' keys, one each (name → secret), beside the key that checks the fleet answers.
COLD_KEYS = {name: f"{name}-budget-bursts-key-{n}4c1e9a7d" for n, name in
             enumerate(("burst-sessions", "burst-spend", "first-refusal"))}


def fleet(tmp_path: Path, store: RedisServer, per_month: str | None = PER_MONTH, keys: dict[str, str] | None = None,
          **extra: str) -> Iterator[list[DispatcherProcess]]:
    """Two replicas on one store; `per_month` None: no machine price (local bots, as an unknown type);
    `keys` (name → secret) beside `team` and `other`."""
    priced = {"RESERVE_HOT_DOLLARS_PER_MONTH": per_month} if per_month is not None else {}
    named = {"team": TEAM_KEY, "other": OTHER_KEY, **(keys or {})}
    with ExitStack() as stack:
        replicas = []
        for n in range(2):
            (tmp_path / f"r{n}").mkdir()
            env = replica_env(store, str(tmp_path), f"r-{n}",
                              DISPATCHER_API_KEYS=",".join(f"{name}:{key}" for name, key in named.items()),
                              DISPATCHER_ADMIN_KEYS=ADMIN_KEY, BOT_CHANNEL_TOKEN=TOKEN, **priced, **extra)
            replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r{n}", env)))
        yield replicas


running = contextmanager(fleet)  # the fleet in a test's own `with`: stopped however the test ends


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DispatcherProcess]]:
    root = tmp_path_factory.mktemp("budget-bursts")
    with redis_server(root) as store:
        yield from fleet(root, store, keys=COLD_KEYS, RESERVE_MAX_IDLE="0")


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


def budget_applied(replicas: list[DispatcherProcess], name: str, value: float) -> None:
    """Until every replica applies runtime value `name` (`budget.KEY.KIND`) as `value`: carried
    within about a second, what `GET /capacity` shows of it is what that replica admits by."""
    def applied(replica: DispatcherProcess) -> bool:
        answer = httpx.get(f"{replica.base_url}/capacity", timeout=TIMEOUT,
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["values"].get(name, {}).get("runtime") == value)

    wait_until(lambda: all(applied(r) for r in replicas), f"{name} = {value} applied at every replica", timeout=30,
               detail=lambda: "\n".join(r.log() for r in replicas))


def refusal(answers: list[httpx.Response]) -> dict[str, Any]:
    return next(a.json()["error"] for a in answers if a.status_code == 429)


def test_a_burst_over_both_replicas_admits_only_what_a_sessions_at_once_budget_allows(
        cold: list[DispatcherProcess]) -> None:
    cli(cold[0], "keys", "limit", "burst-sessions", "--sessions", "2")
    wait_until(lambda: start(cold[1], OTHER_KEY).status_code == 201 and cold, "the fleet answering", timeout=30)
    budget_applied(cold, "budget.burst-sessions.sessions", 2)
    answers = burst(cold, COLD_KEYS["burst-sessions"], 6)
    assert Counter(a.status_code for a in answers) == {201: 2, 429: 4}, [a.text for a in answers]
    error = refusal(answers)
    assert error["code"] == "over_budget" and error["budget"] == "sessions" and error["used"] == 2, error


def test_a_burst_over_both_replicas_holds_a_spend_reserve_for_each_start_running(
        cold: list[DispatcherProcess]) -> None:
    # Less room than one start's reserve: the first start admitted holds it, the others are refused,
    # though no start has ended (and so been priced) yet.
    cli(cold[0], "keys", "limit", "burst-spend", "--spend-month", str(RESERVE_FLOOR * 0.8))
    wait_until(lambda: start(cold[1], OTHER_KEY).status_code == 201 and cold, "the fleet answering", timeout=30)
    budget_applied(cold, "budget.burst-spend.spend-month", RESERVE_FLOOR * 0.8)
    answers = burst(cold, COLD_KEYS["burst-spend"], 8)
    assert Counter(a.status_code for a in answers) == {201: 1, 429: 7}, [a.text for a in answers]
    error = refusal(answers)
    assert error["budget"] == "spend-month" and error["used"] >= RESERVE_FLOOR, error


ROOM = 0.006  # dollars of spend left to the key: less than the start reserve set below, thrice


def test_a_burst_with_a_start_reserve_set_admits_only_the_starts_the_room_holds_reserves_for(
        tmp_path: Path, store: RedisServer) -> None:
    # BUDGET_START_RESERVE_USD a third of the room: three starts fit, not eight. The reserve by
    # default, with a real machine's price or none, is checked on the same ledger at unit level
    # (tests/dispatcher/sessions/test_start_reserve.py); this proves the setting reaches it.
    admitted = 3
    with running(tmp_path, store, None, RESERVE_MAX_IDLE="0", BUDGET_START_RESERVE_USD="0.002") as replicas:
        cli(replicas[0], "keys", "limit", "team", "--spend-month", str(ROOM))
        wait_until(lambda: start(replicas[1], OTHER_KEY).status_code == 201 and replicas, "the fleet answering",
                   timeout=30)
        budget_applied(replicas, "budget.team.spend-month", ROOM)
        answers = burst(replicas, TEAM_KEY, 8)
        assert Counter(a.status_code for a in answers) == {201: admitted, 429: 8 - admitted}, [a.text for a in answers]
        error = refusal(answers)
        assert error["budget"] == "spend-month" and error["used"] >= ROOM, error
        assert error["reserved"] >= ROOM and "held for its sessions still running" in error["message"], error


def test_the_first_refusal_after_a_budget_is_set_quotes_what_the_key_uses(cold: list[DispatcherProcess]) -> None:
    here, there = cold
    key = COLD_KEYS["first-refusal"]
    assert start(here, key).status_code == 201  # no budget yet: nothing of the key read anywhere
    cli(there, "keys", "limit", "first-refusal", "--sessions", "1")
    answer = start(there, key)  # at once, at the replica that never saw the key's session
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
