"""`voicefleet releases smoke NAME --suite PATH` end to end against a real `python -m dispatcher` that
requires a passing suite before a new release takes traffic (`RELEASE_EVAL_REQUIRED=on`, client and
admin keys): the booking line's copy passes its scenario and enters at the canary percent, a copy
with a planted wrong answer fails it at its turn, for its reason, and stays out; `voicefleet releases`
shows each verdict (EVAL), and `releases set` on the failed one is refused with its suite's counts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from tests.support.examples import BOOKING, planted
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # real bots hearing real speech over WebRTC

ADMIN_KEY, CLIENT_KEY = "vf-admin-gate-5d0c3a9e71b2", "vf-client-gate-8e2f4b6a19c0"
SCENARIO = BOOKING / "scenarios" / "opening_hours.toml"
CANARY = 10


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    root = tmp_path_factory.mktemp("gate")
    wrong = planted(root, "wrong", "booking_flow.py", 'HOURS = "We are open every day', 'HOURS = "We are closed')
    # As a stack lists them: the oldest takes no traffic, `stable` serves, the newest (`next`) waits to
    # enter at the canary percent.
    listed = {"wrong": wrong, "stable": BOOKING / "bot.py", "next": BOOKING / "bot.py"}
    releases = {"canaryPercent": CANARY, "releases": [{"name": n, "images": {"*": str(f)}} for n, f in listed.items()]}
    env = {"RELEASES": json.dumps(releases), "RELEASE_EVAL_REQUIRED": "on", "DISPATCHER_API_KEYS": CLIENT_KEY,
           "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
           "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def run(dispatcher: DispatcherProcess, *args: str) -> Result:
    result = CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet",
                                env={"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY,
                                     "VOICEFLEET_API_KEY": None})
    assert ADMIN_KEY not in result.output
    return result


def rows(result: Result) -> dict[str, list[str]]:
    """`voicefleet releases`'s table by release: the cells of each column, split on two spaces."""
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    return {line.split()[0]: [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            for line in lines}


def test_a_passing_suite_lets_the_release_in_and_a_failing_one_keeps_it_out(dispatcher: DispatcherProcess) -> None:
    before = rows(run(dispatcher, "releases"))
    assert before["next"][1] == "0%" and before["next"][6] == "-"  # WEIGHT, EVAL

    passed = run(dispatcher, "releases", "smoke", "next", "--suite", str(SCENARIO), "--json")
    assert passed.exit_code == 0, passed.output
    answer = json.loads(passed.stdout)
    assert (answer["eval"]["passed"], answer["eval"]["runs"], answer["eval"]["ok"]) == (1, 1, True)
    assert answer["smoke"]["status"] == "passed" and answer["weight"] == CANARY

    failed = run(dispatcher, "releases", "smoke", "wrong", "--suite", str(SCENARIO))
    assert failed.exit_code == 1, failed.output
    # The suite's own table names the fault's scenario, its turn, what was expected and what was heard
    # (the one planted fault placed as a real call; the others' verdicts: test_eval_fault_verdicts.py).
    assert re.search(r"opening hours  .*turn 1 \('What are your opening hours'\): expected 'open every day', "
                     r"heard 'We are closed", failed.stdout), failed.stdout
    assert "smoke wrong by its suite: failed 0/1" in failed.stdout
    refused = run(dispatcher, "releases", "set", "wrong", "10")
    assert refused.exit_code == 1 and "release_not_smoke_tested" in refused.output
    assert re.search(r"eval suite [0-9a-f]{12} passed 0/1", refused.output), refused.output

    after = rows(run(dispatcher, "releases"))
    assert re.fullmatch(r"1/1 ✓ \d+s ago", after["next"][6]), after
    assert re.fullmatch(r"0/1 ✗ \d+s ago", after["wrong"][6]), after
    assert after["stable"][6] == "-" and (after["next"][1], after["wrong"][1]) == (f"{CANARY}%", "0%")
    assert answer["eval"]["suite"] == json.loads(run(dispatcher, "releases", "--json").stdout)["releases"][0][
        "eval"]["suite"]  # the same scenario file, the same suite id
