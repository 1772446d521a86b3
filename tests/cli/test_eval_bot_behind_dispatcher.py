"""`voicefleet eval` against a real `python -m dispatcher` serving a copy of the booking line that
answers seconds late because its machine is starved of CPU while it works 0.5 s (its threads and
seven busy processes on one core: tests/bots/cpu_starved.py): it misses the scenario's `within_ms`,
its bot host waited for a CPU as long as its answer was late, so its call is inconclusive (exit 4),
with the reason in `--json`. A bot late by its own doing (one that blocks its loop with
`time.sleep(3)`, or awaits before answering) is told apart by the host in-process, on the real kernel
(tests/bot/test_loop_lag.py: its loop late or on time, waiting for no CPU), and fails by the
verdict's rules (test_eval_bot_behind.py)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.loop_lag import waited_for_cpu
from tests.cli.test_eval_dispatcher import run_eval, with_releases
from tests.support.examples import BOOKING, planted
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.evals.verdict import INCONCLUSIVE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),  # real bots hearing real speech over WebRTC
              pytest.mark.skipif(waited_for_cpu() is None, reason="the kernel reports no run-queue wait here")]

HOURS = BOOKING / "scenarios" / "opening_hours.toml"  # its turn expects audio within 2500 ms
ANSWER = "        await self.start_processing_metrics()\n"
STARVED = "        await __import__('cpu_starved').starved(0.5)\n"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    root = tmp_path_factory.mktemp("late")
    releases = {"starved": planted(root, "starved", "responder.py", ANSWER, STARVED + ANSWER)}
    shutil.copy(Path(__file__).resolve().parents[1] / "bots" / "cpu_starved.py", root / "starved")
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"),
                        {**with_releases(releases), "RELEASE_WEIGHTS": "starved=100"}) as running:
        yield running


def test_a_starved_bot_host_reads_inconclusive(dispatcher: DispatcherProcess) -> None:
    starved = run_eval(dispatcher.base_url, str(HOURS), "--release", "starved", "--json")
    assert starved.exit_code == INCONCLUSIVE, starved.output
    summary = json.loads(starved.stdout)
    assert summary["verdict"] == "inconclusive", summary
    assert summary["calls"] == {"passed": 0, "inconclusive": 1, "failed": 0}, summary
    inconclusive = summary["scenarios"][0]["inconclusive"][0]
    assert re.fullmatch(r"the bot.s host fell behind real time by [\d.]+ s in turn 1: its machine was busy",
                        inconclusive["reason"]), inconclusive
    # Late, or so late the turn's listening was over (at a load of 20 it took 14 s): the machine's either way.
    assert re.search("expected audio within 2500 ms, it began after|expected an answer, heard nothing",
                     inconclusive["failure"]), inconclusive
