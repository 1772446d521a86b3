"""The release gate by scenario suite with a real `python -m dispatcher` (`RELEASE_EVAL_REQUIRED=on`,
stack-shaped `RELEASES` of local bot files, client and admin keys): a new release takes no weight
until a passing suite's verdict is recorded for it, a failing one keeps it out, a plain smoke
session is refused, verdicts not made of that release's own eval sessions are refused, and so is a
failed run's calls sent again as a pass; each
recorded verdict is in `GET /releases` (the admin's and a client's view) and the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.releases import listed_releases

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a real dispatcher and its bot processes

ADMIN_KEY, CLIENT_KEY = "eval-gate-admin-key-0123456789", "eval-gate-client-key-0123456789"
ADMIN, CLIENT = {"Authorization": f"Bearer {ADMIN_KEY}"}, {"Authorization": f"Bearer {CLIENT_KEY}"}
WAIT = 60.0  # a safety net for a loaded machine, never what is checked
CANARY = 20
SUITE = "5a" * 32


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    folder = tmp_path_factory.mktemp("eval-gate")
    releases = []
    for name in ("other", "stable", "next"):  # the newest, `next`, waits to enter at the canary percent
        (folder / f"{name}.py").write_text("async def bot(runner_args): ...\n")
        releases.append({"name": name, "images": {"*": str(folder / f"{name}.py")}})
    env = {"RELEASES": json.dumps({"canaryPercent": CANARY, "releases": releases}), "RELEASE_EVAL_REQUIRED": "on",
           "DISPATCHER_API_KEYS": CLIENT_KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0",
           "MAX_CONCURRENT_SESSIONS": "20"}
    with run_dispatcher(Path(folder), env) as running:
        yield running


def post(d: DispatcherProcess, path: str, body: object = None, headers: dict[str, str] = ADMIN) -> httpx.Response:
    return httpx.post(d.base_url + path, json=body, headers=headers, timeout=WAIT)


def started(d: DispatcherProcess, release: str, *, is_eval: bool = True) -> str:
    """A session pinned to `release` (an eval's when `is_eval`), stopped at once: its index entry stays."""
    body: dict[str, Any] = {"release": release, **({"eval": True} if is_eval else {})}
    answer = post(d, "/start", body, CLIENT)
    assert answer.status_code == 201, answer.text
    session_id = str(answer.json()["session_id"])
    httpx.delete(f"{d.base_url}/sessions/{session_id}", headers=CLIENT, timeout=WAIT)
    return session_id


def release(d: DispatcherProcess, name: str) -> dict[str, Any]:
    return listed_releases(d.base_url, ADMIN_KEY)[name]


def error(answer: httpx.Response) -> tuple[int, str, str]:
    said = answer.json()["error"]
    return answer.status_code, said["code"], said["message"]


def test_no_weight_until_a_passing_suite_is_recorded_a_failing_one_blocks_and_a_pass_lets_it_in(
        dispatcher: DispatcherProcess) -> None:
    assert release(dispatcher, "next")["weight"] == 0 and release(dispatcher, "next")["eval"] is None
    status, code, message = error(httpx.put(f"{dispatcher.base_url}/releases/next", json={"weight": 10},
                                            headers=ADMIN, timeout=WAIT))
    assert (status, code) == (409, "release_not_smoke_tested") and "--suite PATH" in message
    status, code, message = error(post(dispatcher, "/releases/next/smoke"))  # one smoke call is not enough here
    assert (status, code) == (409, "eval_required")
    assert "voicefleet releases smoke next --suite PATH" in message and "RELEASE_EVAL_REQUIRED" in message

    calls = [started(dispatcher, "next") for _ in range(3)]
    failing = post(dispatcher, "/releases/next/smoke", {"suite": SUITE, "sessions": calls, "failed": calls[1:2]})
    assert failing.status_code == 200, failing.text
    shut = release(dispatcher, "next")
    assert shut["weight"] == 0 and shut["smoke"]["status"] == "failed"
    assert {k: shut["eval"][k] for k in ("suite", "passed", "runs", "ok", "failed")} == {
        "suite": SUITE, "passed": 2, "runs": 3, "ok": False, "failed": [calls[1]]}
    assert shut["eval"]["sessions"][0] == calls[1] and set(shut["eval"]["sessions"]) == set(calls)
    status, code, message = error(httpx.put(f"{dispatcher.base_url}/releases/next", json={"weight": 10},
                                            headers=ADMIN, timeout=WAIT))
    assert (status, code) == (409, "release_not_smoke_tested") and f"eval suite {SUITE[:12]} passed 2/3" in message

    # The failed run's calls sent again, the failure left out: a verdict is a later run's.
    replayed = post(dispatcher, "/releases/next/smoke", {"suite": SUITE, "sessions": calls})
    status, code, _ = error(replayed)
    assert (status, code) == (422, "eval_sessions_refused") and set(replayed.json()["error"]["sessions"]) == set(calls)
    assert release(dispatcher, "next")["weight"] == 0

    calls = [started(dispatcher, "next") for _ in range(3)]  # the suite run again
    passing = post(dispatcher, "/releases/next/smoke", {"suite": SUITE, "sessions": calls})
    assert passing.status_code == 200, passing.text
    opened = release(dispatcher, "next")
    assert opened["weight"] == CANARY and opened["smoke"]["status"] == "passed"
    assert (opened["eval"]["passed"], opened["eval"]["runs"], opened["eval"]["ok"]) == (3, 3, True)
    assert opened["eval"]["by"].startswith("admin-")
    assert httpx.put(f"{dispatcher.base_url}/releases/next", json={"weight": 50}, headers=ADMIN,
                     timeout=WAIT).status_code == 200

    client_view = httpx.get(f"{dispatcher.base_url}/releases", headers=CLIENT, timeout=WAIT).json()
    seen = next(r for r in client_view["releases"] if r["name"] == "next")["eval"]
    assert set(seen) == {"passed", "runs", "ok", "at"} and seen["ok"] is True  # no session, no admin id
    history = httpx.get(f"{dispatcher.base_url}/releases/history", headers=ADMIN, timeout=WAIT).json()["changes"]
    reasons = [c["reason"] for c in history if c["by"].startswith("admin-")]
    assert f"next: eval suite {SUITE[:12]} passed 3/3; {CANARY}% of the traffic" in reasons, reasons
    assert any(r.startswith(f"next: eval suite {SUITE[:12]} passed 2/3") for r in reasons), reasons


def test_a_verdict_not_made_of_that_releases_own_eval_sessions_is_refused_and_changes_nothing(
        dispatcher: DispatcherProcess) -> None:
    others = [started(dispatcher, "stable")]  # an eval's session, of another release
    callers = [started(dispatcher, "other", is_eval=False)]  # a caller's session pinned to the release
    before = release(dispatcher, "other")

    status, code, message = error(post(dispatcher, "/releases/other/smoke", {"suite": SUITE, "sessions": others},
                                       CLIENT))
    assert (status, code) == (403, "admin_key_required") and "DISPATCHER_ADMIN_KEYS" in message
    status, code, message = error(post(dispatcher, "/releases/nope/smoke", {"suite": SUITE, "sessions": others}))
    assert (status, code) == (404, "release_not_found") and "`voicefleet releases`" in message
    refused = post(dispatcher, "/releases/other/smoke", {"suite": SUITE, "sessions": others + callers})
    status, code, message = error(refused)
    assert (status, code) == (422, "eval_sessions_refused")
    assert refused.json()["error"]["sessions"] == {
        others[0]: "an eval's session of release stable, not other",
        callers[0]: "not an eval's session (its start did not say \"eval\": true)"}
    status, code, _ = error(post(dispatcher, "/releases/other/smoke", {"suite": "x", "sessions": others}))
    assert (status, code) == (422, "invalid_eval_verdict")

    after = release(dispatcher, "other")
    assert after == before and after["eval"] is None and after["smoke"]["status"] == "pending"
