"""`voicefleet status` against a real `python -m dispatcher` with a real session running and a warm
reserve: the table shows the session under its release, the reserve and the start; `--json` is the
route's answer; no dispatcher, or a client key, ends with the exit code docs/cli.md defines and the
way out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "vf-admin-status-5d2e9a7c13b4"
CLIENT_KEY = "vf-client-status-8f1c3b6e0a27"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    bot = ROOT / "examples" / "parrot" / "bot.py"
    env = {"BOT_RELEASES": f"stable={bot}", "DISPATCHER_API_KEYS": CLIENT_KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
           "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "2"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def run(url: str, *args: str, key: str = ADMIN_KEY) -> Result:
    result = CliRunner().invoke(voicefleet, ["status", *args], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": url, "VOICEFLEET_ADMIN_KEY": key})
    assert key not in result.output
    return result


def status(dispatcher: DispatcherProcess) -> dict[str, Any]:
    result = run(dispatcher.base_url, "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_the_table_shows_the_running_session_under_its_release_the_reserve_and_the_start(
        dispatcher: DispatcherProcess) -> None:
    started = httpx.post(f"{dispatcher.base_url}/start", json={"body": {}},
                         headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=60)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    try:
        # Counted within 2 s (answers are reused that long); the reserve refills its one idle bot.
        body = wait_until(lambda: (b := status(dispatcher))["sessions"]["running"] == 1
                          and b["reserve"]["by_state"]["idle"] >= 1 and b,
                          "the session and an idle reserve bot counted", timeout=120, interval=0.5,
                          detail=dispatcher.log)
        table = run(dispatcher.base_url)
    finally:
        httpx.delete(f"{dispatcher.base_url}/sessions/{session_id}",
                     headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=30)
    assert body["sessions"]["by_release"] == {"stable": 1}
    assert body["starts"]["15m"]["starts"] >= 1
    assert set(body) >= {"sessions", "reserve", "starts", "cost", "replicas", "regions", "scope"}
    assert table.exit_code == 0, table.output
    lines = [line.split() for line in table.stdout.splitlines()]
    assert ["SESSIONS", "1", "running"] in lines
    assert ["release", "stable", "1"] in lines  # the session, under its release
    assert any(line[:2] == ["state", "idle"] and int(line[2]) >= 1 for line in lines if len(line) == 3)
    assert any(line[0] == "15m" and int(line[1]) >= 1 for line in lines if line)  # the start, counted
    assert any(line[:2] == ["COST", "$0.00"] for line in lines)
    assert "local processes cost nothing" in table.stdout


def test_no_dispatcher_at_the_address_is_one_line_and_exit_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(url)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"voicefleet: cannot reach the dispatcher at {url} ([Errno 111] Connection refused): start it "
        "(`uv run python -m dispatcher`) or point the command at it with --url or VOICEFLEET_URL"]


def test_a_client_key_is_refused_with_the_way_out(dispatcher: DispatcherProcess) -> None:
    refused = run(dispatcher.base_url, key=CLIENT_KEY)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "voicefleet: admin_key_required (HTTP 403): a client API key cannot read the deployment's status: use "
        "one of DISPATCHER_ADMIN_KEYS",
        "VOICEFLEET_ADMIN_KEY holds a client API key: set it to one of the dispatcher's DISPATCHER_ADMIN_KEYS",
    ]


def test_no_key_at_all_says_which_variable_to_set(dispatcher: DispatcherProcess) -> None:
    result = CliRunner().invoke(voicefleet, ["status"], env={"VOICEFLEET_URL": dispatcher.base_url,
                                                             "VOICEFLEET_ADMIN_KEY": ""})
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == ("VOICEFLEET_ADMIN_KEY is not set: set it to one of the dispatcher's "
                                              "DISPATCHER_ADMIN_KEYS")


def test_watch_with_json_prints_one_object_a_line_until_interrupted(dispatcher: DispatcherProcess,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    naps: list[float] = []

    def nap(seconds: float) -> None:  # the second pause is interrupted, as Ctrl-C would
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("voicefleet.status.sleep", nap)
    result = run(dispatcher.base_url, "--json", "--watch", "1")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 2 and all("sessions" in answer for answer in answers)
    assert naps == [1.0, 1.0]
