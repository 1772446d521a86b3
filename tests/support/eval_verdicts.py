"""An eval run end to end beside other work: a run whose calls' bot hosts fell behind real time is
inconclusive (exit 4), the verdict the command gives on purpose on a machine too busy to judge its bot
(docs/evals.md, "A bot whose machine was busy"). A test of a passing line takes that as a skip, once none
of the run's calls failed; the rule itself is proven call by call in tests/cli/test_eval_bot_behind.py."""

from __future__ import annotations

import json
from typing import Protocol

import pytest

from voicefleet.evals.verdict import INCONCLUSIVE


class Run(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def output(self) -> str: ...


def skip_if_inconclusive(run: Run) -> None:
    """Skip the test, with the count, where the run is inconclusive and none of its calls failed."""
    if run.exit_code != INCONCLUSIVE:
        return
    calls = json.loads(run.stdout)["calls"]
    assert calls["failed"] == 0 and calls["inconclusive"] >= 1, run.output
    pytest.skip(f"inconclusive: {calls['inconclusive']} call(s) whose bot's host fell behind real time")
