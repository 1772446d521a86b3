"""The deployment at a glance (GET /dashboard) in headless Chromium, against a real dispatcher with
keys, a real bot in a session and a warm reserve: the page asks for the admin key, refuses a client
key with the way out, then shows the session and the reserve, live; the key never leaves the tab but
as a bearer token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SPEECH
from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

ADMIN_KEY = "vf-admin-dashboard-3e8b1d6f92a0"
CLIENT_KEY = "vf-client-dashboard-7a0c5e2b41d9"
SCREENSHOT = Path(__file__).parents[2] / "bench" / "out" / "dashboard.png"  # docs/images/dashboard.png is one


@pytest.fixture(scope="module")
def keyed_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {"DISPATCHER_API_KEYS": CLIENT_KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
           "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "2", "MAX_CONCURRENT_SESSIONS": "3"}
    with run_dispatcher(tmp_path_factory.mktemp("dashboard"), env) as running:
        yield running


def _submit(key: str) -> str:
    return (f"document.getElementById('admin-key').value = {json.dumps(key)};"
            "document.getElementById('key-form').requestSubmit()")


async def test_the_page_asks_for_the_admin_key_then_shows_the_session_and_the_reserve(
        keyed_dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    base = keyed_dispatcher.base_url
    started = httpx.post(f"{base}/start", json={"body": {}}, headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                         timeout=60)
    assert started.status_code == 201, started.text
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    try:
        async with Browser(base + "/dashboard", mic, tmp_path / "profile") as page:
            asked = await page.wait_for("window.voicefleetStatus && window.voicefleetStatus.state === 'needs-key'", 30)
            first = await page.evaluate("document.getElementById('problem').textContent")
            assert asked and "unauthorized" in first, first
            assert await page.evaluate("document.getElementById('board').hidden")

            await page.evaluate(_submit(CLIENT_KEY))
            refused = await page.wait_for(
                "document.getElementById('problem').textContent.includes('admin_key_required')", 30)
            text = await page.evaluate("document.getElementById('problem').textContent")
            assert refused and "use one of DISPATCHER_ADMIN_KEYS" in text, text
            assert await page.evaluate("window.voicefleetStatus.state") == "needs-key"

            await page.evaluate(_submit(ADMIN_KEY))
            shown = await page.wait_for(
                "window.voicefleetStatus.state === 'ok'"
                " && document.getElementById('sessions-running').textContent === '1'"
                " && window.voicefleetStatus.status.reserve.by_state.idle >= 1", 120)
            view = json.loads(await page.evaluate("JSON.stringify(window.voicefleetStatus)"))
            assert shown, (view, keyed_dispatcher.log())
            sessions = await page.evaluate("document.getElementById('sessions-table').innerText")
            reserve = await page.evaluate("document.getElementById('reserve-table').innerText")
            assert "release\tdefault\t1" in sessions, sessions
            assert "state\tidle\t" in reserve, reserve
            assert await page.evaluate("document.querySelectorAll('.uplot').length") == 4
            # Capacity beside its use, from GET /capacity: the session cap's row holds the one running session.
            assert await page.wait_for("window.voicefleetStatus.capacity !== null", 30), view
            capacity = await page.evaluate("document.getElementById('capacity-table').innerText")
            assert "\nsessions\t3\t1\t" in capacity, capacity  # the cap, 1 in use, its setting
            polls = view["polls"]
            assert await page.wait_for(f"window.voicefleetStatus.polls > {polls}", 30)  # live: polled again
            assert await page.evaluate("sessionStorage.getItem('voicefleet.adminKey')") == ADMIN_KEY
            assert ADMIN_KEY not in await page.evaluate("document.documentElement.outerHTML")

            await page.send("Emulation.setDeviceMetricsOverride", width=1280, height=1020, deviceScaleFactor=1,
                            mobile=False)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.wait_for("new Promise((done) => setTimeout(() => done(true), 300))", 5)  # a re-layout
            await page.screenshot(SCREENSHOT)
    finally:
        httpx.delete(f"{base}/sessions/{started.json()['session_id']}",
                     headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=30)
    assert not [url for url in page.requests if ADMIN_KEY in url or CLIENT_KEY in url]
    assert not [url for url in page.requests if not url.startswith((base, "data:"))], page.requests
