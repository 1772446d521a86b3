"""`voicefleet eval` against a real `python -m dispatcher` serving copies of the booking line that answer
seconds late three ways: one awaits 3 s (slow by design), one blocks its loop with `time.sleep(3)`
(its own fault), one's machine is starved of CPU while it works 0.5 s (its threads and seven busy
processes on one core: tests/bots/cpu_starved.py). All three miss the scenario's `within_ms`; only
the starved one's bot host waited for a CPU as long as its answer was late, so only its call is
inconclusive (exit 4), with the reason in `--json`."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.loop_lag import waited_for_cpu
from tests.cli.test_eval_dispatcher import evals_at_once, run_eval, with_releases
from tests.support.examples import BOOKING, planted
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.evals.verdict import INCONCLUSIVE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),  # real bots hearing real speech over WebRTC
              pytest.mark.skipif(waited_for_cpu() is None, reason="the kernel reports no run-queue wait here")]

HOURS = BOOKING / "scenarios" / "opening_hours.toml"  # its turn expects audio within 2500 ms
ANSWER = "        await self.start_processing_metrics()\n"
DELAYS = {
    "asleep": "        await __import__('asyncio').sleep(3.0)\n",
    "blocked": "        __import__('time').sleep(3.0)\n",
    "starved": "        await __import__('cpu_starved').starved(0.5)\n",
}


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    root = tmp_path_factory.mktemp("late")
    releases = {name: planted(root, name, "responder.py", ANSWER, delay + ANSWER) for name, delay in DELAYS.items()}
    shutil.copy(Path(__file__).resolve().parents[1] / "bots" / "cpu_starved.py", root / "starved")
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"),
                        {**with_releases(releases), "RELEASE_WEIGHTS": "asleep=100"}) as running:
        yield running


def test_a_starved_bot_host_reads_inconclusive_while_a_bot_slow_by_design_still_fails(
        dispatcher: DispatcherProcess) -> None:
    # The two late by their own doing at once, each a process of its own; the starved one alone after
    # them, its seven busy processes no part of their calls.
    runs = evals_at_once(dispatcher.base_url, *([str(HOURS), "--release", release, "--json"]
                                                for release in ("asleep", "blocked")))
    for release, late in zip(("asleep", "blocked"), runs, strict=True):
        assert late.exit_code == 1, (release, late.output)
        summary = json.loads(late.stdout)
        assert summary["verdict"] == "failed" and summary["calls"]["failed"] == 1, summary
        failure = summary["scenarios"][0]["failures"][0]["failure"]
        assert "expected audio within 2500 ms, it began after" in failure, (release, summary)

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
