"""The three-region fleet emulator's own parts: its callers' patience (a warm bot in any region
within `maxWaitSeconds`, else a cold start at home, as the regional simulator's callers), the join
of every region's records (a spilled session is ready in the region that took it), and the
simulator replaying the very arrivals the regions were sent."""

from __future__ import annotations

import asyncio
import io
import json
import math
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.fleet_emulator.__main__ import COLD_STARTS, tail_mean
from bench.fleet_emulator.cloud import SUSPEND_SECONDS
from bench.fleet_emulator.load import start
from bench.fleet_emulator.regions import NAMES, cloud_cold_starts, days, emulated, head_starts, simulated
from bench.reserve_sim_model import Result
from bench.reserve_sim_regions import World
from dispatcher.reserve.frozen import SUSPEND_SECONDS as DISPATCHER_SUSPEND_SECONDS
from tests.fakes.server import FakeServer


def test_a_start_refused_for_a_slow_cold_start_starts_again_cold_at_home() -> None:
    asked: list[dict[str, object]] = []

    async def begin(request: Request) -> JSONResponse:
        body = await request.json()
        asked.append(body)
        if "maxWaitSeconds" in body:  # no warm bot in any region
            return JSONResponse({"error": {"code": "cold_start_too_slow"}}, status_code=503)
        return JSONResponse({"session_id": "s1", "region": "eu"}, status_code=201)

    out = io.StringIO()
    with FakeServer(Starlette(routes=[Route("/start", begin, methods=["POST"])])) as server:
        async def once() -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                await start(client, server.url, "k", 30.0, out, max_wait=3.0)
        asyncio.run(once())
    record = json.loads(out.getvalue())
    assert [("maxWaitSeconds" in a) for a in asked] == [True, False]
    assert record["status"] == 201 and record["session_id"] == "s1" and record["cold_after_refusal"]
    assert 0 < record["refused_after"] <= record["answered"]  # when its caller asked again
    assert "error" not in record


def test_a_spilled_session_is_found_ready_in_the_region_that_took_it_and_counted_as_spilled(tmp_path: Path) -> None:
    now = time.time()
    starts: dict[str, list[dict[str, object]]] = {
        "eu": [{"sent": now, "status": 201, "session_id": "a", "region": "eu"},
               {"sent": now, "status": 201, "session_id": "b", "region": "us"},
               {"sent": now, "status": 503, "session_id": None, "region": None}],
        "us": [{"sent": now, "status": 201, "session_id": "c", "region": "us", "refused_after": 0.04}],
        "ap": [{"sent": now, "status": 201, "session_id": "d", "region": "ap"}]}
    ready: dict[str, list[dict[str, object]]] = {"eu": [{"session_id": "a", "ready": now + 0.1, "cold": False}],
             "us": [{"session_id": "b", "ready": now + 0.2, "cold": False},
                    {"session_id": "c", "ready": now + 3.0, "cold": True}],
             "ap": []}  # d never got a bot
    for name in NAMES:
        (tmp_path / name).mkdir()
        (tmp_path / f"starts-{name}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in starts[name]))
        (tmp_path / name / "ready.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ready[name]))
    result = emulated(tmp_path)
    assert (result["starts"], result["refused"], result["never_ready"], result["warm"]) == (5, 1, 1, 2)
    assert math.isclose(result["spilled"], 1 / 5) and result["p95"] == math.inf and result["tail"] == 3.0
    assert result["refused_after"] == 0.04  # the callers' time to ask again, for the model's callers


def test_the_simulator_replays_each_regions_own_arrivals() -> None:
    regional = days(7, 10.0, 180.0, (60.0, 120.0))
    counts = [len(day.arrival_times) for day in regional]
    assert counts[0] > max(counts[1:])  # eu's burst
    model = simulated({}, regional, 10.0, 180.0, 7, None, draws=1)
    assert model["starts"] == sum(counts)
    assert model["warm"] + model["refused"] <= model["starts"]


def test_the_simulator_takes_each_regions_cold_starts_from_that_regions_emulated_cloud(tmp_path: Path) -> None:
    regional = days(7, 10.0, 180.0, (60.0, 120.0))
    for name, cold in zip(NAMES, (0.5, 20.0, 20.0), strict=True):
        (tmp_path / name).mkdir()
        creates = [[30.0, False], [cold, True]] * 1000  # the reserve's and the sessions', interleaved
        (tmp_path / name / COLD_STARTS).write_text(json.dumps(creates))
    clouds = cloud_cold_starts(tmp_path)
    assert [(c.reserve[0], c.sessions[0]) for c in clouds] == [(30.0, 0.5), (30.0, 20.0), (30.0, 20.0)]  # NAMES' order
    fast = simulated({}, regional, 10.0, 180.0, 7, None, draws=1, cold_starts=[clouds[0]] * 3)
    slow = simulated({}, regional, 10.0, 180.0, 7, None, draws=1, cold_starts=clouds[1:] * 3)
    assert fast["drawn_cold_starts"] == slow["drawn_cold_starts"] == 0
    # A start's cold start is the one given for a session (after its turn for a create), not a draw.
    assert 20.0 <= slow["p95"] < 24.0 and fast["p95"] < 5.0


def test_the_simulator_spills_by_the_peers_answers_to_polls_as_the_dispatchers_do() -> None:
    regional = days(7, 20.0, 180.0, (60.0, 120.0))
    polled = simulated({}, regional, 20.0, 180.0, 7, None, draws=1)
    at_once = simulated({}, regional, 20.0, 180.0, 7, None, draws=1, polled=False)
    assert polled["spill_refused"] > 0 == at_once["spill_refused"]  # a peer's warm bot gone since its answer


def test_each_regions_head_start_is_from_its_first_reserve_launch_to_its_load_generators_start(tmp_path: Path) -> None:
    now = time.time()
    for i, name in enumerate(NAMES):
        (tmp_path / name).mkdir()
        (tmp_path / f"schedule-{name}.json").write_text(json.dumps([[1.5, 30.0], [4.0, 30.0]]))
        # Written as answered: the second start first.
        (tmp_path / f"starts-{name}.jsonl").write_text(json.dumps({"sent": now + 4.0}) + "\n"
                                                       + json.dumps({"sent": now + 1.5}) + "\n")
        machines = [{"reserve": False, "created": now - 20.0}, {"reserve": True, "created": now - 3.0 - i},
                    {"reserve": True, "created": now - 1.0}]
        (tmp_path / name / "machines.jsonl").write_text("".join(json.dumps(m) + "\n" for m in machines))
    assert [round(h, 6) for h in head_starts(tmp_path)] == [3.0, 4.0, 5.0]



def test_the_simulator_freezes_bots_in_the_emulated_clouds_suspend_as_the_dispatchers_planners_are_told(
        monkeypatch: pytest.MonkeyPatch) -> None:
    worlds: list[World] = []
    run = World.run

    def noted(self: World) -> list[Result]:
        worlds.append(self)
        return run(self)

    monkeypatch.setattr(World, "run", noted)
    simulated({}, days(7, 10.0, 60.0, None), 10.0, 60.0, 7, None, draws=1)
    for region in worlds[0].regions:
        assert region.provider.suspend_seconds == SUSPEND_SECONDS  # the emulated cloud's
        assert region.tiers.suspend_seconds == DISPATCHER_SUSPEND_SECONDS  # the planner's, as the dispatcher's is told


def test_the_slowest_five_percent_is_their_mean_moved_by_one_start_by_its_own_part() -> None:
    warm, cold = [0.1] * 95, [4.0] * 5
    assert tail_mean(warm + cold) == 4.0
    # One cold start turned warm: the p95 falls from a cold start to a warm claim; this, by a fifth.
    assert math.isclose(tail_mean(warm + [0.1] + cold[1:]), (4.0 * 4 + 0.1) / 5)
    assert tail_mean([0.1, math.inf]) == math.inf and math.isnan(tail_mean([]))
