"""A recorded start at one replica that claims a warm bot held by another is recorded all the same:
its recording, transcript, logs and report land at the session's end, not when a replica stops.
Two real dispatchers on one redis-server and one shared recordings folder; the stand-in bot records
as the bot's recorder does (a checkpoint part, then at its end a 5 MiB part, its log lines and a
two-exchange transcript).

The two tests share one fleet: each claims the reserve bot the planner holds then (the second claims
the refill of the first's) and reads only its own session's artifacts and timeline."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replicas.conftest import WARM_ONE, Fleet, delete, get, start_fleet, warm_start_elsewhere
from tests.support.redis_server import redis_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two real dispatchers, a redis-server and a reserve bot: under a minute

KEPT = {"recording.wav", "transcript.jsonl", "logs.jsonl", "report.json"}


def session_objects(folder: Path, session_id: str) -> dict[str, Path]:
    return {p.name: p for p in folder.rglob("*") if p.is_file() and p.parent.name == session_id}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Path]]:
    root = tmp_path_factory.mktemp("recording-elsewhere")
    folder = root / "recordings"
    with redis_server(root) as store, start_fleet(root, store, 2, **WARM_ONE, RECORDING="on",
                                                  RECORDING_DESTINATION=str(folder), STANDIN_MODE="record") as fleet:
        yield fleet, folder


def test_a_warm_bot_claimed_at_another_replica_records_its_call_by_the_end(recorded: tuple[Fleet, Path]) -> None:
    fleet, folder = recorded
    starter, _, started = warm_start_elsewhere(fleet)
    session_id = started.json()["session_id"]
    assert delete(starter, f"/sessions/{session_id}").status_code in (202, 204)

    # Both replicas keep running: the artifacts come with the session's end, not with a replica's stop.
    wait_until(lambda: KEPT <= session_objects(folder, session_id).keys(), "the session's artifacts",
               timeout=60, detail=lambda: f"{sorted(session_objects(folder, session_id))}\n{fleet.logs()}")
    kept = session_objects(folder, session_id)
    report = json.loads(kept["report.json"].read_text())
    assert report["recording"]["status"] == "complete", report
    assert report["kept"] == dict.fromkeys(("recording.wav", "transcript.jsonl", "logs.jsonl"), True), report
    assert report["turns"]["bot_turns"] == 2, report
    assert kept["recording.wav"].stat().st_size == 5 * 1024 * 1024  # the end's part 1 replaced the checkpoint's
    timeline = [e["event"] for e in get(starter, f"/sessions/{session_id}/timeline").json()["events"]]
    assert "recording_ready" in timeline, timeline


def test_a_warm_bot_claimed_at_another_replica_and_killed_leaves_its_partial_recording_at_once(
        recorded: tuple[Fleet, Path]) -> None:
    fleet, folder = recorded
    starter, _, started = warm_start_elsewhere(fleet)
    session_id = started.json()["session_id"]
    def timeline() -> list[dict[str, object]]:
        events: list[dict[str, object]] = get(starter, f"/sessions/{session_id}/timeline").json()["events"]
        return events

    wait_until(lambda: any(e["event"] == "ready" for e in timeline()), "the bot's ready (after its checkpoint "
               "part)", detail=fleet.logs)
    events = timeline()
    machine = str(next(e["machine_id"] for e in events if e["event"] == "claimed"))
    assert machine.startswith("pid-"), machine
    os.kill(int(machine.removeprefix("pid-")), signal.SIGKILL)  # its checkpoint part uploaded, nothing more

    wait_until(lambda: "report.json" in session_objects(folder, session_id), "the killed call's report",
               timeout=60, detail=fleet.logs)
    report = json.loads(session_objects(folder, session_id)["report.json"].read_text())
    assert report["recording"]["status"] == "partial" and report["recording"]["bytes"] == 4096, json.dumps(report)
    assert report["kept"]["recording.wav"] is True, report
    # One cost for the killed call: the report's is what either replica answers, a stop later included.
    assert report["cost"]["estimated"] is True, report["cost"]
    delete(starter, f"/sessions/{session_id}")
    for replica in (r.base_url for r in fleet.replicas):
        cost = get(replica, f"/sessions/{session_id}").json()["cost"]
        assert cost["session_seconds"] == report["cost"]["session_seconds"], (replica, cost, report["cost"])
