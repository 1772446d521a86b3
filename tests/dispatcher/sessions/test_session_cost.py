"""A session's cost: its machine-seconds from its timeline, at the price table's price
(dispatcher/reserve/prices.py), in `GET /sessions/{id}`, in the ended webhook and summed in `/metrics`.

The formula against the table for each way a session runs, then a local session end to end with
real stand-in bot processes: its cost is 0 but its machine-seconds are its timeline's."""

from __future__ import annotations

import base64

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.reserve.prices import HOURS_PER_MONTH, BotPrice, bot_price
from dispatcher.sessions.cost import NOT_COUNTED, THAWED, UNPRICED, SessionCosts
from dispatcher.settings import Settings
from dispatcher.usage.relay_cost import NOT_MEASURED
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import in_process
from tests.support.hook_receiver import hook_receiver
from tests.support.waiting import until, within

SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
FLY = BotPrice(5.78, "shared-cpu-1x, 1024 MB", "https://fly.io/docs/about/pricing/")


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def test_a_cold_sessions_cost_is_its_seconds_from_launch_to_end_at_the_tables_price() -> None:
    price = bot_price(Named("ecs"), {"AWS_REGION": "us-east-1", "ECS_TASK_VCPU": "1", "ECS_TASK_MEMORY_GB": "2"})
    assert price is not None and price.size == "1 vCPU, 2 GB"
    events = [{"event": "requested", "at": 1000.0}, {"event": "launched", "at": 1001.5},
              {"event": "ready", "at": 1030.0}, {"event": "ended", "at": 1121.5}]
    cost = SessionCosts("ecs", price).of(events, running=False)
    assert cost is not None
    assert (cost.session_seconds, cost.idle_seconds, cost.estimated) == (120.0, 0.0, False)
    # The table's monthly price, per second: (1 × 0.04048 + 2 × 0.004445) $/h, rounded to the cent a month.
    assert cost.total == pytest.approx(120 * round((0.04048 + 2 * 0.004445) * HOURS_PER_MONTH, 2)
                                       / (HOURS_PER_MONTH * 3600))
    shown = cost.as_json()
    assert shown["price_per_hour"] == pytest.approx(price.dollars_per_month / HOURS_PER_MONTH, abs=1e-6)
    assert shown["currency"] == "USD" and shown["provider"] == "ecs"
    assert shown["not_counted"] == [*NOT_COUNTED, NOT_MEASURED]  # a session without a WebRTC transport


def test_a_warm_claimed_session_carries_its_bots_idle_time_before_the_claim() -> None:
    events = [{"event": "requested", "at": 50.0}, {"event": "claimed", "at": 50.2, "idle_seconds": 300.0},
              {"event": "ended", "at": 110.2}]
    cost = SessionCosts("fly", FLY).of(events, running=False)
    assert cost is not None
    assert (cost.session_seconds, cost.idle_seconds, cost.machine_seconds) == (pytest.approx(60.0), 300.0,
                                                                                pytest.approx(360.0))
    per_second = 5.78 / (HOURS_PER_MONTH * 3600)
    assert cost.idle_usd == pytest.approx(300 * per_second)
    assert cost.total == pytest.approx(360 * per_second)
    assert THAWED not in cost.not_counted


def test_a_thawed_bot_whose_idle_time_is_not_known_says_so() -> None:
    events = [{"event": "claimed", "at": 10.0}, {"event": "ended", "at": 20.0}]
    cost = SessionCosts("fly", FLY).of(events, running=False)
    assert cost is not None and cost.idle_seconds == 0.0 and THAWED in cost.not_counted


def test_a_live_session_is_priced_until_now_and_estimated() -> None:
    events = [{"event": "launched", "at": 100.0}]
    cost = SessionCosts("fly", FLY, clock=lambda: 145.0).of(events, running=True)
    assert cost is not None and (cost.session_seconds, cost.estimated) == (45.0, True)
    # One that ended without its bot's report: until its last event, estimated too.
    stopped = SessionCosts("fly", FLY, clock=lambda: 999.0).of(
        [*events, {"event": "stop_requested", "at": 130.0}], running=False)
    assert stopped is not None and (stopped.session_seconds, stopped.estimated) == (30.0, True)


def test_a_killed_bots_session_is_priced_to_its_machines_recorded_end_whatever_came_after() -> None:
    events = [{"event": "launched", "at": 100.0}, {"event": "ready", "at": 105.0},
              {"event": "machine_ended", "at": 130.0, "state": "failed"}]
    costs = SessionCosts("fly", FLY, clock=lambda: 999.0)
    at_its_end = costs.of(events, running=False)
    later = costs.of([*events, {"event": "stop_requested", "at": 151.0}, {"event": "recording_partial", "at": 160.0}],
                     running=False)
    assert at_its_end is not None and later is not None
    assert at_its_end.as_json() == later.as_json() and later.session_seconds == 30.0 and later.estimated


def test_no_machine_no_cost_and_no_price_no_amounts() -> None:
    assert SessionCosts("fly", FLY).of([{"event": "requested", "at": 1.0}, {"event": "failed", "at": 2.0}],
                                       running=False) is None
    cost = SessionCosts("gce", None).of([{"event": "launched", "at": 1.0}, {"event": "ended", "at": 3.0}],
                                        running=False)
    assert cost is not None
    shown = cost.as_json()
    assert "total" not in shown and "price_per_hour" not in shown and shown["machine_seconds"] == 2.0
    assert shown["not_counted"][0] == UNPRICED


async def test_a_local_session_costs_nothing_but_its_machine_seconds_are_its_timelines(standin_mode) -> None:
    """A real stand-in bot: started, ready, then its pipeline fails and it ends. Its ended webhook,
    its GET and /metrics carry the same cost: $0 on local processes, its seconds from launch to end."""
    standin_mode("pipeline-error")
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    async with hook_receiver(hook) as url:
        env = {"WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET, "RESERVE_MAX_IDLE": "0"}
        app = create_app(Settings(), env=env, machines=machines, rooms=None)
        async with in_process(app) as running:
            start = await running.client.post("/start", json={})
            assert start.status_code == 201
            assert "cost" not in start.json()  # a start's answer: the session has cost nothing yet
            session_id = start.json()["session_id"]
            assert await within(lambda: any(e["type"] == "session.ended" for e in received), timeout=30), received
            timeline = (await running.client.get(f"/sessions/{session_id}/timeline")).json()["events"]
            answer = (await running.client.get(f"/sessions/{session_id}")).json()

            async def counted() -> str | None:  # counted in the background once its end is recorded
                text = (await running.client.get("/metrics")).text
                return text if "voicefleet_session_cost_dollars_total{" in text else None

            metrics = await until(counted, "the session's cost in /metrics", timeout=30)
    at = {event["event"]: event["at"] for event in timeline}
    seconds = round(at["ended"] - at["launched"], 3)
    assert seconds > 0
    cost = answer["cost"]
    assert (cost["provider"], cost["total"], cost["price_per_hour"], cost["estimated"]) == ("local", 0.0, 0.0, False)
    assert cost["machine_seconds"] == pytest.approx(seconds, abs=0.002)  # each event's time is kept to 1 ms
    assert cost["idle_seconds"] == 0.0  # launched cold: no reserve
    ended = next(e for e in received if e["type"] == "session.ended")
    assert ended["data"]["cost"] == cost
    assert sample(metrics, 'voicefleet_session_machine_seconds_total{part="session",provider="local",'
                           'release="default"}') == pytest.approx(cost["session_seconds"], abs=0.0005)
    # (the answer's seconds are rounded to 1 ms; the counter sums them unrounded)
    assert sample(metrics, 'voicefleet_session_cost_dollars_total{provider="local",release="default"}') == 0.0


def sample(metrics: str, series: str) -> float:
    [value] = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(series + " ")]
    return value
