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
from tests.replicas.test_redial import AUTH, DEADLINE, KEY, machine_of, port_of
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until

__all__ = ["fake_fly"]
pytestmark = pytest.mark.slow  # a dispatcher and three bot processes per case


def env(fly: FakeFly, channel_url: str) -> dict[str, str]:
    return {"MACHINES": "fly", "DISPATCHER_API_KEYS": KEY, **fly.env, "BOT_CHANNEL_URL": channel_url,
            "BOT_IDENTITY_AUDIENCE": channel_url,  # the bots' tokens name the URL they dial (the front's)
            "BOT_CHANNEL_TOKEN": "d" * 40, "TRANSPORTS": "webrtc", "TURN_URLS": "turn:127.0.0.1:3478?transport=udp",
            "TURN_SHARED_SECRET": "t" * 32, "MAX_SESSION_SECONDS": "600", "LOG_LEVEL": "info",
            "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100",
            # two ready bots, one of them hot: the other is frozen once warm
            "RESERVE_MIN_IDLE": "2", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0", "RESERVE_MIN_HOT": "1"}


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


def one_frozen_one_hot(fly: FakeFly, dispatcher: DispatcherProcess) -> dict[str, Any]:
    """The reserve at rest: one bot frozen (returned), one hot."""
    until("one bot frozen and one hot", lambda: len(idle_machines(fly, "suspended")) == 1
          and len(idle_machines(fly, "started")) == 1, dispatcher)
    [frozen] = idle_machines(fly, "suspended")
    return frozen


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
    text = httpx.get(f"{dispatcher.base_url}/metrics", headers=AUTH, timeout=DEADLINE).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_a_start_with_no_hot_bot_thaws_a_frozen_one_which_takes_it_warm_as_it_was(
    deployment: tuple[DispatcherProcess, FlyBots], fake_fly: FakeFly
) -> None:
    dispatcher, bots = deployment
    frozen = one_frozen_one_hot(fake_fly, dispatcher)
    frozen_pid = bots.pid_of(frozen["id"])
    assert frozen["id"] in bots.paused  # its process is held, not ended
    until("/metrics shows both tiers", lambda: metric(
        dispatcher, 'voicefleet_reserve_bots{provider="fly",state="frozen"}') == 1, dispatcher)
    assert metric(dispatcher, 'voicefleet_reserve_tier_cost_dollars_per_month{provider="fly",tier="frozen"}') == 0.3
    assert metric(dispatcher, 'voicefleet_reserve_tier_cost_dollars_per_month{provider="fly",tier="hot"}') == 5.78

    first = start(dispatcher)  # takes the hot bot
    second = start(dispatcher)  # none hot now (its replacement still boots): the frozen one, thawed
    assert machine_of(fake_fly, second["session_id"])["id"] == frozen["id"], "the second start was not the frozen bot"
    assert answering_bot(dispatcher, second["session_id"]) == f"{second['session_id']}/{frozen_pid}"  # same process
    assert frozen["id"] not in bots.paused
    assert first["session_id"] != second["session_id"]
    assert metric(dispatcher, 'voicefleet_reserve_thaw_seconds_count{provider="fly"}') == 1
    assert metric(dispatcher, 'voicefleet_reserve_claims_total{outcome="warm_hit",provider="fly",') == 2


def test_a_frozen_bot_that_does_not_come_back_is_retired_and_the_start_is_cold(
    deployment: tuple[DispatcherProcess, FlyBots], fake_fly: FakeFly
) -> None:
    dispatcher, bots = deployment
    frozen = one_frozen_one_hot(fake_fly, dispatcher)
    fake_fly.on_resume = None  # the machine says started, but its bot never runs again
    start(dispatcher)
    answer = start(dispatcher)
    assert fake_fly.machines[frozen["id"]]["state"] == "destroyed"  # retired, not left running
    assert machine_of(fake_fly, answer["session_id"])["name"] == f"vf-{answer['session_id']}"  # launched cold
    assert metric(dispatcher, 'voicefleet_reserve_retired_total{provider="fly",reason="thaw_timeout"}') == 1
