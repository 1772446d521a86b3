"""`voicefleet session stop ID` of a session that never existed, against a real `python -m dispatcher`
with an admin key: refused (404, exit non-zero, saying there is no such session) and left off the
audit trail; a real session's stop still stops it and is audited."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

ADMIN_KEY = "vf-admin-stop-unknown-4c1e8a0d29"
ACME_KEY = "vf-acme-stop-unknown-9b3d6f2e71"
NEVER = "000000000000000000000000"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {"DISPATCHER_API_KEYS": f"acme:{ACME_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def run(dispatcher: DispatcherProcess, *args: str) -> Result:
    return CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet",
                              env={"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})


def audited(dispatcher: DispatcherProcess) -> list[str]:
    answer = httpx.get(f"{dispatcher.base_url}/audit/sessions", timeout=30,
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 200, answer.text
    return [str(line.get("session_id")) for line in answer.json()["lines"]]


def test_a_stop_of_a_session_that_never_existed_is_refused_and_not_audited(dispatcher: DispatcherProcess) -> None:
    result = run(dispatcher, "session", "stop", NEVER)
    assert result.exit_code == 1, result.output
    assert f"no session {NEVER}" in result.output and "stopped" not in result.output
    answer = httpx.delete(f"{dispatcher.base_url}/sessions/{NEVER}", timeout=30,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 404, answer.text
    assert NEVER not in audited(dispatcher)


def test_a_real_sessions_stop_still_stops_it_and_is_audited(dispatcher: DispatcherProcess) -> None:
    answer = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=60,
                        headers={"Authorization": f"Bearer {ACME_KEY}"})
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["session_id"]
    result = run(dispatcher, "session", "stop", session_id)
    assert result.exit_code == 0, result.output
    assert session_id in audited(dispatcher)
    again = run(dispatcher, "session", "stop", session_id)  # a second stop is harmless, as before
    assert again.exit_code == 0, again.output
