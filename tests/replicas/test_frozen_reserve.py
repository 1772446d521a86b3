"""The frozen tier end to end: a real dispatcher on the fake Fly API freezes a warm idle bot (its
machine suspended: the bot's process paused with SIGSTOP, as a snapshot keeps it), and a start
that finds no hot bot thaws it (SIGCONT): the same process, warm as it was, dials its channel again
with the same credential, says its idle hello again and takes the session. A frozen bot that does
not come back in time is retired and the start is launched cold.

Real processes: `python -m dispatcher`, and per Fly machine a bot running voicefleet's own channel
code (tests/replicas/fly_bots.py, tests/replicas/redialling_bot.py), behind a TCP front that
closes the bot's side when the dispatcher closes its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from botchannel.contract import CHANNEL_PATH
from tests.fakes.fixtures import fake_fly
from tests.fakes.fly import FakeFly
from tests.replicas.fly_bots import FlyBots, fly_bots
from tests.replicas.front import front
from tests.replicas.test_redial import ADMIN_KEY, AUTH, DEADLINE, KEY, METRICS, machine_of, port_of
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until

__all__ = ["fake_fly"]
pytestmark = pytest.mark.slow  # a dispatcher and three bot processes per case


def env(fly: FakeFly, channel_url: str) -> dict[str, str]:
    return {"MACHINES": "fly", "DISPATCHER_API_KEYS": KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, **fly.env,
            "BOT_CHANNEL_URL": channel_url,
            "BOT_IDENTITY_AUDIENCE": channel_url,  # the bots' tokens name the URL they dial (the front's)
            "BOT_CHANNEL_TOKEN": "d" * 40, "TRANSPORTS": "webrtc", "TURN_URLS": "turn:127.0.0.1:3478?transport=udp",
            "TURN_SHARED_SECRET": "t" * 32, "MAX_SESSION_SECONDS": "600", "LOG_LEVEL": "info",
            "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100",
            # two ready bots, none kept hot: both are frozen once warm. With a hot one the planner
            # resumes a frozen bot as soon as a start takes the hot one, and which thaw served the
            # next start (the claim's, or the planner's) would be the machine's timing, not the test's.
            "RESERVE_MIN_IDLE": "2", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0", "RESERVE_MIN_HOT": "0"}


@pytest.fixture
def deployment(tmp_path: Path, fake_fly: FakeFly) -> Iterator[tuple[DispatcherProcess, FlyBots]]:
    # Every /metrics read lists the machines, and the test reads it in loops: Fly's list limit (the
    # fake's 1/s, burst 3) answered one of them 503 after the dispatcher's retries. Lists are not what
    # this tests; the dispatcher's own bound is lifted to match (FLY_LIST_RATE in `env`).
    fake_fly.list_per_second, fake_fly.list_burst = 1000, 1000
    with ExitStack() as stack:
        balancer = stack.enter_context(front())
        channel_url = f"ws://127.0.0.1:{balancer.port}{CHANNEL_PATH}"
        (tmp_path / "bots").mkdir()
        bots = stack.enter_context(fly_bots(fake_fly, {"BOT_CHANNEL_URL": channel_url}, tmp_path / "bots"))
        dispatcher = stack.enter_context(run_dispatcher(tmp_path, env(fake_fly, channel_url)))
        balancer.route_to(port_of(dispatcher))
        yield dispatcher, bots


def until(what: str, condition: Callable[[], Any], dispatcher: DispatcherProcess) -> Any:
    return wait_until(condition, what, timeout=DEADLINE, detail=lambda: dispatcher.log()[-4000:])


def idle_machines(fly: FakeFly, state: str) -> list[dict[str, Any]]:
    return [m for m in list(fly.machines.values()) if m["name"].startswith("vf-idle-") and m["state"] == state
            and "voicefleet_session" not in m["config"]["metadata"]]


def all_frozen(fly: FakeFly, dispatcher: DispatcherProcess) -> list[dict[str, Any]]:
    """The reserve at rest: both bots frozen (suspended), none hot. Until a start arrives the
    planner expects none, so it resumes none: only a start's claim thaws one."""
    until("both bots frozen", lambda: len(idle_machines(fly, "suspended")) == 2
          and not idle_machines(fly, "started"), dispatcher)
    return idle_machines(fly, "suspended")


def start(dispatcher: DispatcherProcess) -> dict[str, Any]:
    answer = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, headers=AUTH, timeout=DEADLINE)
    assert answer.status_code == 201, f"{answer.text}\n{dispatcher.log()[-4000:]}"
    return dict(answer.json())


def answering_bot(dispatcher: DispatcherProcess, session_id: str) -> str:
    """`<session>/<pid>` of the bot that answers the session's offer."""
    offer = httpx.post(f"{dispatcher.base_url}/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"},
                       headers=AUTH, timeout=DEADLINE)
    assert offer.status_code == 200, offer.text
    return str(offer.json()["bot"])


def metric(dispatcher: DispatcherProcess, line_start: str) -> float:
    text = httpx.get(f"{dispatcher.base_url}/metrics", headers=METRICS, timeout=DEADLINE).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_a_start_with_no_hot_bot_thaws_a_frozen_one_which_takes_it_warm_as_it_was(
    deployment: tuple[DispatcherProcess, FlyBots], fake_fly: FakeFly
) -> None:
    dispatcher, bots = deployment
    frozen = {machine["id"]: bots.pid_of(machine["id"]) for machine in all_frozen(fake_fly, dispatcher)}
    assert set(frozen) <= bots.paused  # their processes are held, not ended
    until("/metrics shows the frozen tier", lambda: metric(
        dispatcher, 'voicefleet_reserve_bots{provider="fly",state="frozen"}') == 2, dispatcher)
    frozen_cost = 'voicefleet_reserve_tier_cost_dollars_per_month{provider="fly",tier="frozen"}'
    assert metric(dispatcher, frozen_cost) == 0.6  # 2 × $0.30
    assert metric(dispatcher, 'voicefleet_reserve_tier_cost_dollars_per_month{provider="fly",tier="hot"}') == 0

    answer = start(dispatcher)  # no hot bot: a frozen one, thawed by the start's own claim
    machine_id = machine_of(fake_fly, answer["session_id"])["id"]
    assert machine_id in frozen, "the start was not a frozen bot"
    assert answering_bot(dispatcher, answer["session_id"]) == f"{answer['session_id']}/{frozen[machine_id]}"
    assert machine_id not in bots.paused
    assert metric(dispatcher, 'voicefleet_reserve_claims_total{outcome="warm_hit",provider="fly",') == 1
    # The claim's thaw; the planner, now expecting starts, may have resumed the other bot to hot.
    assert metric(dispatcher, 'voicefleet_reserve_thaw_seconds_count{provider="fly"}') >= 1


def test_a_frozen_bot_that_does_not_come_back_is_retired_and_the_start_is_cold(
    deployment: tuple[DispatcherProcess, FlyBots], fake_fly: FakeFly
) -> None:
    dispatcher, _ = deployment
    frozen = [machine["id"] for machine in all_frozen(fake_fly, dispatcher)]
    fake_fly.on_resume = None  # the machine says started, but its bot never runs again
    answer = start(dispatcher)
    assert machine_of(fake_fly, answer["session_id"])["name"] == f"vf-{answer['session_id']}"  # launched cold
    # The claim's thaw, and any resume the planner ordered after the start, end retired: never left running.
    until("every thawed bot retired", lambda: all(
        fake_fly.machines[m]["state"] in ("suspended", "destroyed") for m in frozen), dispatcher)
    retired = [m for m in frozen if fake_fly.machines[m]["state"] == "destroyed"]
    assert retired, "the thawed bot was not retired"
    assert metric(dispatcher, 'voicefleet_reserve_retired_total{provider="fly",reason="thaw_timeout"}') == len(retired)
