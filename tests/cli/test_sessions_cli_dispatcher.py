"""`voicefleet sessions` and `voicefleet session ID` against a real `python -m dispatcher` with named
client keys and an admin key: tables and JSON as the API answers them, pages followed, an unknown
session in one line (exit 1), a wrong key told which variable to set, no dispatcher (exit 3)."""

from __future__ import annotations

import json
import re
import time
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

ADMIN_KEY = "vf-admin-sessions-5e2b9d0c71"
ACME_KEY, ACME_NEW_KEY, BETA_KEY = "vf-acme-3a9c0e1d44", "vf-acme-new-6d2f81b0a9", "vf-beta-7b1d5c8e02"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {"DISPATCHER_API_KEYS": f"acme:{ACME_KEY},acme:{ACME_NEW_KEY},beta:{BETA_KEY}",
           "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


@pytest.fixture(scope="module")
def started(dispatcher: DispatcherProcess) -> dict[str, list[str]]:
    """Two sessions of acme's (the second stopped), one of beta's (an eval's)."""
    ids: dict[str, list[str]] = {"acme": [], "beta": []}
    for name, key, start in (("acme", ACME_KEY, {}), ("acme", ACME_KEY, {}), ("beta", BETA_KEY, {"eval": True})):
        answer = httpx.post(f"{dispatcher.base_url}/start", json=start, timeout=60,
                            headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 201, answer.text
        ids[name].append(answer.json()["session_id"])
    stop = httpx.delete(f"{dispatcher.base_url}/sessions/{ids['acme'][1]}", timeout=60,
                        headers={"Authorization": f"Bearer {ACME_KEY}"})
    assert stop.status_code in (200, 202, 204), stop.text
    return ids


def run(url: str, *args: str, api_key: str | None = None, admin_key: str | None = None) -> Result:
    env = {"VOICEFLEET_URL": url}
    env.update({"VOICEFLEET_API_KEY": api_key} if api_key else {})
    env.update({"VOICEFLEET_ADMIN_KEY": admin_key} if admin_key else {})
    result = CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet", env=env)
    assert all(key not in result.output for key in (ADMIN_KEY, ACME_KEY, ACME_NEW_KEY, BETA_KEY))
    return result


def listed(dispatcher: DispatcherProcess, *args: str, count: int, **keys: str) -> Result:
    """The command's answer once it shows `count` sessions (the listing is written in the background)."""
    def shown() -> Result | None:
        result = run(dispatcher.base_url, "sessions", "--json", *args, **keys)
        assert result.exit_code == 0, result.output
        return result if len(json.loads(result.stdout)["sessions"]) == count else None

    return wait_until(shown, f"{count} sessions in `voicefleet sessions {' '.join(args)}`", timeout=60)


def test_a_key_lists_its_names_sessions_as_a_table_and_as_json(dispatcher: DispatcherProcess,
                                                              started: dict[str, list[str]]) -> None:
    body = json.loads(listed(dispatcher, count=2, api_key=ACME_NEW_KEY).stdout)  # the name's other key
    assert [s["session_id"] for s in body["sessions"]] == started["acme"][::-1]
    ended = json.loads(listed(dispatcher, "--status", "ended", count=1, api_key=ACME_KEY).stdout)
    assert [s["session_id"] for s in ended["sessions"]] == [started["acme"][1]]
    lines = run(dispatcher.base_url, "sessions", api_key=ACME_KEY).stdout.splitlines()
    assert lines[0].split() == ["SESSION", "STATUS", "CREATED", "ENDED", "RELEASE", "REGION", "EVAL", "COST", "$",
                                "ERROR"]
    assert [line.split()[:2] for line in lines[1:]] == [[started["acme"][1], "ended"], [started["acme"][0], "active"]]


def test_an_admin_key_lists_every_keys_sessions_with_their_key_and_follows_the_pages(
        dispatcher: DispatcherProcess, started: dict[str, list[str]]) -> None:
    listed(dispatcher, count=3, admin_key=ADMIN_KEY)
    table = run(dispatcher.base_url, "sessions", admin_key=ADMIN_KEY).stdout.splitlines()
    assert table[0].split()[-1] == "KEY"
    assert [(line.split()[0], line.split()[-1]) for line in table[1:]] == [
        (started["beta"][0], "beta"), (started["acme"][1], "acme"), (started["acme"][0], "acme")]
    paged = run(dispatcher.base_url, "sessions", "--limit", "1", "--all", "--json", admin_key=ADMIN_KEY)
    assert len(json.loads(paged.stdout)["sessions"]) == 3 and json.loads(paged.stdout)["next_cursor"] is None
    first = run(dispatcher.base_url, "sessions", "--limit", "1", admin_key=ADMIN_KEY)
    assert first.stderr.startswith("more: --cursor ")
    cursor = first.stderr.split()[-1]
    second = json.loads(run(dispatcher.base_url, "sessions", "--limit", "1", "--cursor", cursor, "--json",
                            admin_key=ADMIN_KEY).stdout)
    assert [s["session_id"] for s in second["sessions"]] == [started["acme"][1]]
    beta = json.loads(run(dispatcher.base_url, "sessions", "--key", "beta", "--json", admin_key=ADMIN_KEY).stdout)
    assert [s["session_id"] for s in beta["sessions"]] == started["beta"]
    column = table[0].index("EVAL")  # EVAL marks beta's eval session
    assert [line[column:].split()[0] for line in table[1:]] == ["eval", "-", "-"]
    evals = run(dispatcher.base_url, "sessions", "--eval", admin_key=ADMIN_KEY).stdout.splitlines()
    assert [line.split()[0] for line in evals[1:]] == started["beta"]
    others = json.loads(run(dispatcher.base_url, "sessions", "--no-eval", "--json", admin_key=ADMIN_KEY).stdout)
    assert [s["session_id"] for s in others["sessions"]] == started["acme"][::-1]
    shown = run(dispatcher.base_url, "session", started["beta"][0], admin_key=ADMIN_KEY).stdout
    assert re.search(r"\nEVAL +yes, on release default\n", shown), shown  # labels padded to the longest


def test_a_client_key_asking_for_another_key_is_told_it_is_an_admins_question(dispatcher: DispatcherProcess) -> None:
    refused = run(dispatcher.base_url, "sessions", "--key", "beta", api_key=ACME_KEY)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[0].startswith("voicefleet: admin_key_required (HTTP 403)")
    assert "VOICEFLEET_ADMIN_KEY" in refused.stderr.splitlines()[1]


def test_one_session_shows_its_state_trace_and_timeline(dispatcher: DispatcherProcess,
                                                        started: dict[str, list[str]]) -> None:
    session_id = started["acme"][0]
    shown = run(dispatcher.base_url, "session", session_id, api_key=ACME_NEW_KEY)
    assert shown.exit_code == 0, shown.output
    facts = dict(line.split(None, 1) for line in shown.stdout.split("\n\n")[0].splitlines())
    assert facts["SESSION"] == session_id and facts["STATUS"] in ("starting", "started", "joined")
    assert len(facts["TRACE"]) == 32
    timeline = shown.stdout.split("\n\n")[1].splitlines()
    assert timeline[0].split() == ["WHEN", "EVENT", "REPLICA", "DETAIL"] and timeline[1].split()[2] == "requested"
    body = json.loads(run(dispatcher.base_url, "session", session_id, "--json", api_key=ACME_KEY).stdout)
    assert body["session"]["session_id"] == session_id and body["timeline"]["events"][0]["event"] == "requested"
    cost = body["session"]["cost"]  # the dispatcher prices each session (docs/http-api.md); the table shows it
    assert facts["COST"].startswith(f"{cost['total']} {cost['currency']} (") and (
        f"{cost['provider']} {cost['size']}" in facts["COST"])


def test_an_unknown_session_is_one_line_and_exit_1(dispatcher: DispatcherProcess,
                                                   started: dict[str, list[str]]) -> None:
    for session_id in ("0" * 24, started["beta"][0]):  # no session; another key's: the same answer
        result = run(dispatcher.base_url, "session", session_id, api_key=ACME_KEY)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [f"voicefleet: not_found (HTTP 404): no session {session_id}"]


def test_a_wrong_key_is_told_which_variable_to_set(dispatcher: DispatcherProcess) -> None:
    for args in (("sessions",), ("session", "0" * 24)):
        result = run(dispatcher.base_url, *args, api_key="not-a-key-of-this-dispatcher")
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            "voicefleet: unauthorized (HTTP 401): invalid API key",
            "set VOICEFLEET_API_KEY to one of the dispatcher's DISPATCHER_API_KEYS (the key that started the "
            "session, or another of its name)"]
    unset = run(dispatcher.base_url, "session", "0" * 24)
    assert unset.exit_code == 1 and "VOICEFLEET_API_KEY is not set" in unset.stderr


def test_no_dispatcher_at_the_url_is_exit_3() -> None:
    for args in (("sessions",), ("session", "0" * 24)):
        result = run(f"http://127.0.0.1:{free_port()}", *args, api_key=ACME_KEY)
        assert result.exit_code == 3
        assert "cannot reach the dispatcher" in result.stderr and "VOICEFLEET_URL" in result.stderr


def test_a_bad_option_is_a_usage_error_and_sends_nothing() -> None:
    result = run(f"http://127.0.0.1:{free_port()}", "sessions", "--status", "running", api_key=ACME_KEY)
    assert result.exit_code == 2 and "running" in result.stderr


def audit_lines(dispatcher: DispatcherProcess) -> list[dict[str, object]]:
    answer = httpx.get(f"{dispatcher.base_url}/audit/sessions", timeout=30,
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 200, answer.text
    lines: list[dict[str, object]] = answer.json()["lines"]
    return lines


def test_the_admin_reads_a_clients_session_on_the_record(dispatcher: DispatcherProcess,
                                                         started: dict[str, list[str]]) -> None:
    session_id = started["acme"][0]
    shown = run(dispatcher.base_url, "session", session_id, "--json", admin_key=ADMIN_KEY)
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["session"]["session_id"] == session_id and "total" in body["session"]["cost"]
    assert body["timeline"]["events"][0]["event"] == "requested"
    mine = [line for line in audit_lines(dispatcher) if line["session_id"] == session_id]
    assert {line["action"] for line in mine} >= {"session.read", "session.timeline"}
    assert all(str(line["by"]).startswith("admin-") and isinstance(line["at"], float) for line in mine)
    assert all(ADMIN_KEY not in json.dumps(line) for line in mine)
    trail = run(dispatcher.base_url, "audit", admin_key=ADMIN_KEY).stdout.splitlines()
    assert trail[0].split() == ["WHEN", "BY", "ACTION", "SESSION", "REGION"]
    assert {line.split()[3] for line in trail[1:] if line.split()[4] == session_id} >= {
        "session.read", "session.timeline"}


def test_the_admin_stops_a_clients_session_and_another_client_still_cannot(dispatcher: DispatcherProcess) -> None:
    answer = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=60,
                        headers={"Authorization": f"Bearer {ACME_KEY}"})
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["session_id"]
    for args in (("session", session_id), ("session", "stop", session_id)):  # beta: as if it did not exist
        refused = run(dispatcher.base_url, *args, api_key=BETA_KEY)
        assert refused.exit_code == 1
        assert refused.stderr.splitlines() == [f"voicefleet: not_found (HTTP 404): no session {session_id}"]
    timeline = httpx.get(f"{dispatcher.base_url}/sessions/{session_id}/timeline", timeout=30,
                         headers={"Authorization": f"Bearer {BETA_KEY}"})
    assert timeline.status_code == 404
    assert not [line for line in audit_lines(dispatcher) if line["session_id"] == session_id]

    stopped = run(dispatcher.base_url, "session", "stop", session_id, admin_key=ADMIN_KEY)
    assert stopped.exit_code == 0, stopped.output
    assert stopped.stdout.startswith(f"{session_id}: stop")
    assert [line["action"] for line in audit_lines(dispatcher) if line["session_id"] == session_id] == ["session.stop"]

    def ended() -> bool:
        shown = run(dispatcher.base_url, "session", session_id, "--json", api_key=ACME_KEY)
        return shown.exit_code == 0 and json.loads(shown.stdout)["session"]["status"] == "ended"

    wait_until(ended, "the stopped session to end", timeout=60)


def test_a_client_key_cannot_read_the_audit_trail(dispatcher: DispatcherProcess) -> None:
    answer = httpx.get(f"{dispatcher.base_url}/audit/sessions", timeout=30,
                       headers={"Authorization": f"Bearer {ACME_KEY}"})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "admin_key_required"


def test_since_takes_a_time_ago(dispatcher: DispatcherProcess, started: dict[str, list[str]]) -> None:
    def recent() -> list[dict[str, Any]] | None:
        result = run(dispatcher.base_url, "sessions", "--since", "1h", "--json", api_key=ACME_KEY)
        assert result.exit_code == 0, result.output
        found: list[dict[str, Any]] = json.loads(result.stdout)["sessions"]
        return found if set(started["acme"]) <= {s["session_id"] for s in found} else None

    found = wait_until(recent, "acme's sessions since an hour ago", timeout=60)
    assert found is not None
    newest = max(s["created"] for s in found)
    wait_until(lambda: time.time() > newest + 0.01, "the clock past the newest session's start", timeout=10)
    later = run(dispatcher.base_url, "sessions", "--since", "0s", "--json", api_key=ACME_KEY)
    assert later.exit_code == 0 and [s for s in json.loads(later.stdout)["sessions"]
                                     if s["session_id"] in started["acme"]] == []


def test_a_context_sends_its_key_to_its_dispatcher(dispatcher: DispatcherProcess, started: dict[str, list[str]],
                                                    tmp_path: Path) -> None:
    def run_in(*args: str, **env: str) -> Result:
        return CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet",
                                  env={"VOICEFLEET_CONFIG_DIR": str(tmp_path), "VOICEFLEET_URL": "",
                                       "VOICEFLEET_ADMIN_KEY": "", "VOICEFLEET_API_KEY": "", **env})

    assert run_in("context", "add", "here", "--url", dispatcher.base_url, "--key-env", "VF_HERE_ADMIN").exit_code == 0
    assert run_in("context", "use", "here").exit_code == 0
    shown = run_in("session", started["beta"][0], "--json", VF_HERE_ADMIN=ADMIN_KEY)  # as the admin: beta's too
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["session"]["session_id"] == started["beta"][0]
    assert ADMIN_KEY not in (tmp_path / "contexts.json").read_text()
