"""The fleet emulator's own parts: Fly's create limit as the API enforces it, cold starts drawn per
machine, and the join of the two records, where a start that never got a ready bot, or was
refused, counts as never ready (as the simulator counts it), never as a fast one."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bench.fleet_emulator.__main__ import emulated, measures_of, over_draws, reserve_pipeline, run_timing, simulated
from bench.fleet_emulator.cloud import EmulatedFly
from bench.reserve_sim_model import THAW_REDIAL_SECONDS, WARM_CLAIM_SECONDS
from bench.reserve_sim_providers import BY_NAME
from bench.reserve_sim_traffic import SHAPES, measured_day
from dispatcher.reserve.metrics import ReserveMetrics
from tests.fakes.fly import API_TOKEN, APP, BOT_IMAGE
from tests.fakes.server import serve


def test_the_emulated_fly_refuses_creates_past_its_app_limit_and_boots_each_machine_after_its_own_cold_start() -> None:
    with serve(EmulatedFly(seed=7)) as fly:
        body = {"config": {"image": BOT_IMAGE, "env": {}, "metadata": {}}}
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        codes = [httpx.post(f"{fly.url}/v1/apps/{APP}/machines", json=body, headers=headers, timeout=10).status_code
                 for _ in range(5)]
    assert codes.count(200) == 3 and codes[3:] == [429, 429], codes
    delays = [m["_boot_after"] for m in fly.machines.values()]
    assert len(set(delays)) == 3 and all(0.1 < d < 60 for d in delays), delays
    assert all(m["state"] == "created" for m in fly.machines.values())  # none booted before its time
    assert fly.refused_creates == 2
    # Every create's own, in creation order, none for a session here (no session id); a refused create draws none.
    assert fly.cold_starts == [(d, False) for d in delays]


def test_each_emulated_app_has_its_own_create_limit() -> None:
    with serve(EmulatedFly(seed=7, apps=2)) as fly:
        body = {"config": {"image": BOT_IMAGE, "env": {}, "metadata": {}}}
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        codes = [httpx.post(f"{fly.url}/v1/apps/{app}/machines", json=body, headers=headers, timeout=10).status_code
                 for app in (APP, f"{APP}-2") for _ in range(4)]
    assert codes == [200, 200, 200, 429] * 2, codes


def test_a_refused_start_and_one_that_never_got_a_bot_count_as_never_ready(tmp_path: Path) -> None:
    now = time.time()
    starts = [{"sent": now, "status": 201, "session_id": "warm"},
              {"sent": now, "status": 201, "session_id": "cold"},
              {"sent": now, "status": 201, "session_id": "lost"},
              {"sent": now, "status": 503, "session_id": None}]
    ready = [{"session_id": "warm", "ready": now + 0.05, "cold": False},
             {"session_id": "cold", "ready": now + 4.0, "cold": True}]
    (tmp_path / "starts.jsonl").write_text("".join(json.dumps(s) + "\n" for s in starts))
    (tmp_path / "ready.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ready))
    (tmp_path / "cloud.json").write_text("{}")
    result = emulated(tmp_path, tmp_path / "starts.jsonl")
    assert (result["starts"], result["refused"], result["never_ready"], result["warm"]) == (4, 1, 1, 1)
    assert math.isclose(result["p50"], 4.0, abs_tol=1e-6) and result["p95"] == math.inf


def test_each_resume_takes_its_own_drawn_time_as_the_simulator_draws_it() -> None:
    fly = EmulatedFly(seed=7)
    now = time.monotonic()
    machines = [{"id": str(n), "state": "starting", "_changed": now, "config": {}} for n in range(20)]
    assert all(fly._tick(m)["state"] == "starting" for m in machines)  # none is back at once
    draws = [m["_resume_after"] for m in machines]
    assert len(set(draws)) == 20 and 0.2 < sorted(draws)[10] < 0.8, draws  # around the model's median 0.4 s
    for m in machines:
        m["_changed"] = m["_resume_for"] = now - m["_resume_after"] - 0.001  # its own time has passed
    assert all(fly._tick(m)["state"] == "started" for m in machines)


def test_the_dispatchers_own_start_to_ready_figures_are_read_whatever_order_the_exposition_gives_the_labels() -> None:
    texts = []
    for warm_seconds, cold_seconds in ((0.2, 3.0), (0.4, 5.0)):  # two replicas, each its own registry
        registry = CollectorRegistry()
        metrics = ReserveMetrics(registry, "fly")
        metrics.ready_after(warm_seconds, warm=True, release="default")
        metrics.ready_after(cold_seconds, warm=False, release="default")
        metrics.claimed(warm=True, release="default", seconds=0.05)
        texts.append(generate_latest(registry).decode())
    measured = measures_of(texts)
    assert measured["start → ready, warm"][1] == 2 and math.isclose(measured["start → ready, warm"][0], 0.3)
    assert measured["start → ready, cold"][1] == 2 and math.isclose(measured["start → ready, cold"][0], 4.0)
    assert measured["claim"][1] == 2 and math.isclose(measured["claim"][0], 0.05)
    assert measured["thaw"][1] == 0 and math.isnan(measured["thaw"][0])  # none measured: nan, not 0


def test_the_model_compared_with_a_run_takes_that_runs_claim_and_the_thaw_beyond_its_own_resume() -> None:
    fly = BY_NAME["fly"]
    resume_mean = fly.resume_median_seconds * math.exp(fly.resume_sigma ** 2 / 2)
    claim, redial = run_timing({"claim": (0.024, 363.0), "thaw": (resume_mean + 0.05, 94.0)}, fly)
    assert claim == 0.024 and redial == pytest.approx(0.05)
    # Nothing measured: the production assumptions stay.
    assert run_timing({"claim": (math.nan, 0.0), "thaw": (math.nan, 0.0)}, fly) == (WARM_CLAIM_SECONDS,
                                                                                  THAW_REDIAL_SECONDS)
    # A thaw faster than the modelled resume adds nothing, never a negative re-dial.
    assert run_timing({"claim": (0.02, 1.0), "thaw": (0.1, 1.0)}, fly)[1] == 0.0


def test_machines_report_what_the_run_added_to_each_drawn_cold_start(tmp_path: Path) -> None:
    machines = tmp_path / "machines.jsonl"
    rows = [{"reserve": True, "created": 100.0, "boot_drawn": 3.0, "booted": 103.1, "connected": 103.3},
            {"reserve": False, "created": 100.0, "boot_drawn": 2.0, "booted": 102.0, "connected": 102.5},
            {"reserve": True, "created": 100.0, "boot_drawn": 2.0, "booted": 102.0}]  # never dialled: left out
    machines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reserve, cold = reserve_pipeline(machines)
    assert reserve.startswith("reserve machines (1)") and "100 ms late" in reserve and "admitted 200 ms" in reserve
    assert cold.startswith("cold machines (1)") and "0 ms late" in cold and "admitted 500 ms" in cold


def test_the_models_spread_over_draws_is_its_median_and_the_p95s_middle_ninety_percent() -> None:
    runs = [{"starts": 10, "refused": 0, "warm": w, "p50": 0.1, "p95": p} for w, p in
            zip(range(100, 120), [float(n) for n in range(1, 21)], strict=True)]
    figures = over_draws(runs)
    assert figures["p95"] == 10.5 and figures["warm"] == 109.5
    assert figures["p95_range"] == (1.0, 19.0)


def test_another_stream_of_draws_keeps_the_traffic_and_changes_only_the_cold_starts() -> None:
    day = measured_day(7, 60.0, 120.0, SHAPES["flat"], [(30.0, 60.0)])
    own, again, other = (simulated({}, day, 60.0, 120.0, 7, False, 8, draws=k) for k in (0, 0, 1))
    assert own == again  # deterministic
    assert own["starts"] == other["starts"] == len(day.arrival_times)
    assert own["p95"] != other["p95"]
