"""`voicefleet loadtest --transport sip` through the real edge: a local dispatcher running the parrot,
`python -m sipedge` in front of it, and the command's own SIP caller (PJSUA2, a process a call) as
the trunk. Each call's session is learnt from the edge's `200 OK`, its turn timed from the parrot's
echo, and its timeline read; a number no trunk serves, or an edge whose dispatcher is gone, is a
refusal that names the way (and when to try again), not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess
from voicefleet.main import voicefleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a real dispatcher, the edge and real bots


def loadtest(url: str, uri: str, out: Path, *args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["loadtest", "--url", url, "--transport", "sip", "--sip-uri", uri,
                                           "--out", str(out), "--json", *args], prog_name="voicefleet",
                              env={"VOICEFLEET_API_KEY": None, "VOICEFLEET_URL": None, "VOICEFLEET_ADMIN_KEY": None})


def records(out: Path) -> list[dict[str, object]]:
    sessions = json.loads((out / "result.json").read_text())["sessions"]
    assert isinstance(sessions, list)
    return sessions


def test_two_sip_calls_through_the_edge_are_measured_and_named_by_their_sessions(
        edge: EdgeProcess, parrot_dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    url = parrot_dispatcher.base_url
    result = loadtest(url, f"sip:{NUMBER}@127.0.0.1:{edge.sip_port}", tmp_path,
                      "--rate", "1/s", "--duration", "2s", "--concurrency", "2", "--turns", "1")
    assert result.exit_code == 0, f"{result.output}\n{edge.log()}"
    calls = records(tmp_path)
    assert len(calls) == 2 and all(c["outcome"] == "ok" for c in calls), calls
    for call in calls:
        assert call["session_id"] and f"session {call['session_id']}" in edge.log()  # the 200 OK's header
        turns = call["turns"]
        assert isinstance(turns, list) and turns[0] is not None and 0 < turns[0] < 10  # the parrot's echo, timed
        assert call["first_audio"] and call["timeline"], call  # its greeting; the dispatcher's own figures
    assert len({c["session_id"] for c in calls}) == 2
    own = json.loads((tmp_path / "result.json").read_text())["load_generator"]
    assert own["caller_processes_cpu_seconds"] > 0  # the SIP callers' own processes, counted in the generator's cost


def test_a_number_no_trunk_serves_is_refused_with_the_way_forward(
        edge: EdgeProcess, parrot_dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    url = parrot_dispatcher.base_url
    result = loadtest(url, f"sip:+15550000000@127.0.0.1:{edge.sip_port}", tmp_path,
                      "--rate", "1/s", "--duration", "1s", "--turns", "0")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (call,) = records(tmp_path)
    assert (call["outcome"], call["code"], call["status"]) == ("refused", "sip_404", 404), call
    assert "no trunk of the edge serves this number" in str(call["message"]), call


def test_an_edge_that_cannot_reach_its_dispatcher_is_refused_with_its_retry_after(
        parrot_dispatcher: DispatcherProcess, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with run_edge(gone, tmp_path_factory.mktemp("lost-edge")) as lost:
        result = loadtest(parrot_dispatcher.base_url, f"sip:{NUMBER}@127.0.0.1:{lost.sip_port}", tmp_path,
                          "--rate", "1/s", "--duration", "1s", "--turns", "0")
    assert result.exit_code == 1, result.output
    (call,) = records(tmp_path)
    assert (call["outcome"], call["code"]) == ("refused", "sip_503"), call
    assert "(Retry-After: 5 s): the edge or its dispatcher cannot take the call now" in str(call["message"]), call
