"""Every session metric and every JSON log line of a session carry its release (docs/releases.md):
a real dispatcher with two local releases, a start of each, and one refused at the session cap."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.support.processes import run_dispatcher
from tests.support.releases import ADMIN_KEY, WAIT, release_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(300)  # a real dispatcher and two bot processes importing Pipecat

NOT_LOGGING = "voicefleet: open http"  # the local page's address, printed for the developer


def series(text: str, name: str) -> dict[str, float]:
    """`name`'s samples by their labels as written (`outcome="created",provider="local",release="next"`)."""
    found = (re.match(rf"{name}\{{(.*)\}} (\S+)$", line) for line in text.splitlines())
    return {match[1]: float(match[2]) for match in found if match}


def test_each_session_metric_and_log_line_names_the_release_it_ran(tmp_path) -> None:
    env = {**release_env(tmp_path, "stable=90,next=10"), "LOG_FORMAT": "json", "RESERVE_MAX_IDLE": "0",
           "MAX_CONCURRENT_SESSIONS": "2", "BOT_CONNECT_TIMEOUT_SECONDS": "120"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        base = dispatcher.base_url
        started = {name: httpx.post(f"{base}/start", json={"release": name}, timeout=WAIT).json()
                   for name in ("stable", "next")}
        refused = httpx.post(f"{base}/start", json={"release": "next"}, timeout=WAIT)  # past the cap of 2
        # Each cold bot's `ready`: its time to ready is observed under its release.
        wait_until(lambda: all(
            any(e["event"] == "ready" for e in httpx.get(f"{base}/sessions/{s['session_id']}/timeline",
                                                         timeout=WAIT).json()["events"])
            for s in started.values()), "both bots ready", timeout=WAIT * 2, detail=dispatcher.log)
        text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=WAIT).text
        log = dispatcher.log()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "at_capacity", refused.text
    assert {name: answer["release"] for name, answer in started.items()} == {"stable": "stable", "next": "next"}
    for name in ("stable", "next"):
        assert series(text, "voicefleet_session_starts_total")[
            f'outcome="created",provider="local",release="{name}"'] == 1
        assert series(text, "voicefleet_launch_seconds_count")[f'provider="local",release="{name}",waited="false"'] == 1
        assert series(text, "voicefleet_active_sessions")[f'provider="local",release="{name}"'] == 1
        assert series(text, "voicefleet_reserve_claims_total")[
            f'outcome="cold_miss",provider="local",release="{name}"'] == 1
        assert series(text, "voicefleet_start_to_ready_seconds_count")[
            f'path="cold",provider="local",release="{name}"'] == 1
    failures = series(text, "voicefleet_session_start_failures_total")
    assert failures == {'provider="local",reason="at_capacity",release="next"': 1}, failures

    lines = [json.loads(line) for line in log.splitlines() if line.strip() and not line.startswith(NOT_LOGGING)]
    for name, answer in started.items():
        mine = [line for line in lines if line["session_id"] == answer["session_id"]]
        # Its start's lines, its channel's and its bot's own forwarded lines: each names its release.
        assert {"dispatcher.sessions.service", "dispatcher.bot"} <= {line["logger"] for line in mine}
        assert {line["release"] for line in mine} == {name}, [
            (line["logger"], line["message"][:80]) for line in mine if line["release"] != name]
    assert all(line["release"] is None for line in lines if line["session_id"] is None)  # no session, no release
