"""A recording under way with two real dispatchers on one redis-server and a reserve bot the test
steers (tests/replicas/commanded_bot.py): a hand-over whose answer is lost (the planner stopped with
SIGSTOP past the asker's wait) is asked again and answered the same; a planner that drains before the
bot's first part gives the recording to the bot's replica; a report written while the bot's machine
still runs says its cost is provisional."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dispatcher.conftest import STANDIN_ENV
from tests.replicas.conftest import WARM_ONE, Fleet, get, start_fleet, warm_start_elsewhere
from tests.support.processes import DispatcherProcess
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two real dispatchers, a redis-server, a reserve bot and a 12 s stall
BOT = Path(__file__).with_name("commanded_bot.py")
ENDED = {"recording_ready", "recording_partial", "recording_missing"}


class Steered:
    def __init__(self, folder: Path) -> None:
        self.folder, self.n = folder, 0

    def send(self, **command: object) -> Path:
        """Tells the bot its next step; the file its answer will be in."""
        (self.folder / f"cmd-{self.n}.tmp").write_text(json.dumps(command))
        os.replace(self.folder / f"cmd-{self.n}.tmp", self.folder / f"cmd-{self.n}.json")
        self.n += 1
        return self.folder / f"res-{self.n - 1}.json"

    def do(self, **command: object) -> dict[str, Any]:
        return answered(self.send(**command))


def answered(answer: Path) -> dict[str, Any]:
    wait_until(answer.exists, f"the bot's answer ({answer.name})", timeout=120)
    result: dict[str, Any] = json.loads(answer.read_text())
    return result


def steered_fleet_env(tmp_path: Path, folder: Path) -> dict[str, str]:
    steps = tmp_path / "steps"
    steps.mkdir()
    return {**WARM_ONE, "RECORDING": "on", "RECORDING_DESTINATION": str(folder),
            "LOCAL_BOT_COMMAND": shlex.join([sys.executable, str(BOT)]),
            "LOCAL_BOT_ENV": ",".join((*STANDIN_ENV, "COMMANDED_DIR")), "COMMANDED_DIR": str(steps)}


def ended_by_the_bot(bot: Steered, replica: str, session_id: str, folder: Path, fleet: Fleet) -> list[str]:
    """The bot's end as a recorder's: its account, then `ended`; the recording's end events, once
    there is one (its report's one part checked)."""
    finished = bot.do(op="ask", method="recording.finished", params={"parts": 1, "bytes": 4096, "transcript": []})
    assert finished == {"ok": {}}, finished
    bot.send(op="report", event="ended", fields={"reason": "peer_left", "exit_code": 0})

    def events() -> list[dict[str, Any]]:
        timeline: list[dict[str, Any]] = get(replica, f"/sessions/{session_id}/timeline").json()["events"]
        return timeline
    wait_until(lambda: any(e["event"] in ENDED for e in events()), "the recording's end", timeout=60,
               detail=lambda: f"{events()}\n{fleet.logs()}")
    bot.send(op="exit")
    report = json.loads(next(folder.rglob(f"{session_id}/report.json")).read_text())
    assert report["recording"]["bytes"] == 4096, report
    return [e["event"] for e in events() if e["event"] in ENDED]


@dataclass
class WarmCall:
    fleet: Fleet
    folder: Path
    starter: str
    holder: str
    session_id: str
    bot: Steered
    planner: DispatcherProcess  # the starter's


@contextmanager
def warm_call_elsewhere(tmp_path: Path, store: RedisServer) -> Iterator[WarmCall]:
    """Two replicas, a steered bot warm at one and its call started at the other (the planner)."""
    folder = tmp_path / "recordings"
    with start_fleet(tmp_path, store, 2, **steered_fleet_env(tmp_path, folder)) as fleet:
        starter, holder, started = warm_start_elsewhere(fleet)
        planner = next(r for r in fleet.replicas if r.base_url == starter)
        yield WarmCall(fleet, folder, starter, holder, started.json()["session_id"], Steered(tmp_path / "steps"),
                       planner)


def test_a_hand_over_whose_answer_is_lost_is_asked_again_and_the_call_recorded(tmp_path: Path,
                                                                                 store: RedisServer) -> None:
    with warm_call_elsewhere(tmp_path, store) as call:
        os.kill(call.planner.process.pid, signal.SIGSTOP)  # stalled past one hand-over ask's wait (10 s)
        try:
            first_part = call.bot.send(op="put", part=1, size=4096)  # its first ask's answer comes too late
            time.sleep(12)
        finally:
            os.kill(call.planner.process.pid, signal.SIGCONT)
        assert answered(first_part) == {"status": 200}  # asked again, answered the same record
        assert ended_by_the_bot(call.bot, call.starter, call.session_id, call.folder, call.fleet) == [
            "recording_ready"]


def test_a_planner_that_drains_before_the_bots_first_part_gives_its_recording_to_the_bots_replica(
        tmp_path: Path, store: RedisServer) -> None:
    with warm_call_elsewhere(tmp_path, store) as call:
        call.planner.process.send_signal(signal.SIGTERM)  # a rolling deploy drains it; the call goes on
        call.planner.process.wait(timeout=90)
        assert call.bot.do(op="put", part=1, size=4096) == {"status": 200}
        assert ended_by_the_bot(call.bot, call.holder, call.session_id, call.folder, call.fleet) == [
            "recording_ready"]


def test_a_report_written_while_its_machine_still_runs_says_its_cost_is_provisional(tmp_path: Path,
                                                                                      store: RedisServer) -> None:
    folder = tmp_path / "recordings"
    with start_fleet(tmp_path, store, 2, **steered_fleet_env(tmp_path, folder),
                     RECORDING_END_GRACE_SECONDS="4") as fleet:
        _, _, started = warm_start_elsewhere(fleet)
        session_id = started.json()["session_id"]
        bot = Steered(tmp_path / "steps")
        assert bot.do(op="put", part=1, size=4096) == {"status": 200}
        assert bot.do(op="close") == {"closed": True}  # its channel gone, its process running past the grace
        wait_until(lambda: any(folder.rglob(f"{session_id}/report.json")), "the report after the grace",
                   timeout=90, detail=fleet.logs)
        bot.send(op="exit")
        cost = json.loads(next(folder.rglob(f"{session_id}/report.json")).read_text())["cost"]
        assert "still running" in cost["provisional"] and cost["estimated"] is True, cost
