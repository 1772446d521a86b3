"""Every call shown, end to end in headless Chromium: a real local dispatcher with RECORDING=on and
keys, the parrot answering a WebRTC caller speaking a WAV, a second session whose bot is killed. The
dashboard lists both, opens the spoken one (its transcript, and an <audio> whose source the
dispatcher serves as audio/wav), shows the killed one's reason, and renders a transcript holding
markup as text; the local page shows its own call's record once it hangs up, and any listed
session's, or why it kept none. No key is ever in an address."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SPEECH
from tests.e2e.recording_checks import artifacts_when_kept, timeline_event
from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, children_of, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

ADMIN_KEY = "vf-admin-pages-5c1e9a07d3b2"
CLIENT_KEY = "vf-client-pages-0f4b8d2e6a13"
SCREENSHOT = Path(__file__).parents[2] / "bench" / "out" / "dashboard-session.png"  # to look at, not compared
MARKUP = '<img src=x onerror="window.__injected = 1"><b>bold</b>'


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {"RESERVE_MAX_IDLE": "0", "RECORDING": "on", "RECORDING_DESTINATION": str(folder),
           "DISPATCHER_API_KEYS": f"pages:{CLIENT_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running, folder


async def _spoken_session(api: httpx.AsyncClient, base: str) -> str:
    started = await api.post("/start", json={"body": {}})
    assert started.status_code == 201, started.text
    session_id = str(started.json()["session_id"])
    async with WebRTCClient(base + started.json()["offer_url"], headers=dict(api.headers)) as client:
        result = await client.talk(SPEECH, listen_seconds=30.0, until_reply=True)
        assert result.replied, result.summary()
        assert (await api.delete(f"/sessions/{session_id}")).status_code == 204
    await artifacts_when_kept(api, session_id, {"recording.wav", "report.json", "transcript.jsonl"})
    return session_id


async def _killed_session(api: httpx.AsyncClient, dispatcher: DispatcherProcess) -> str:
    started = await api.post("/start", json={"body": {}})
    assert started.status_code == 201, started.text
    session_id = str(started.json()["session_id"])
    await timeline_event(api, session_id, "ready")
    (bot,) = children_of(dispatcher.process.pid)
    os.kill(bot, signal.SIGKILL)
    listed: list[dict[str, object]] = []
    for _ in range(600):
        listed = (await api.get("/sessions", params={"status": "failed"})).json()["sessions"]
        if session_id in [s["session_id"] for s in listed]:
            # The recording's outcome is noted once the dispatcher has tried to complete it, after the
            # machine's end: the page below shows the timeline as it is then.
            await timeline_event(api, session_id, "recording_missing")
            return session_id
        await asyncio.sleep(0.1)
    timeline = (await api.get(f"/sessions/{session_id}/timeline")).json()
    raise AssertionError(f"{session_id} never listed failed: {listed} {timeline} {dispatcher.log()[-2000:]}")


async def _recorded_eval(api: httpx.AsyncClient, base: str) -> None:
    """A one-call suite's verdict on the release (`default`), recorded as `voicefleet releases smoke
    --suite` records it: the eval's session pinned there, then its verdict with the admin key."""
    started = await api.post("/start", json={"body": {}, "eval": True})
    assert started.status_code == 201, started.text
    session_id = str(started.json()["session_id"])
    assert (await api.delete(f"/sessions/{session_id}")).status_code == 204
    recorded = httpx.post(f"{base}/releases/default/smoke", json={"suite": "0e" * 32, "sessions": [session_id]},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert recorded.status_code == 200, recorded.text


def _open(session_id: str) -> str:
    """Clicks the session's row in the dashboard's list: true, or false when it is not listed."""
    return (f"((row) => row ? (row.querySelector('button').click(), true) : false)([...document.querySelectorAll("
            f"'#session-list tr')].find((row) => row.dataset.sessionId === {json.dumps(session_id)}))")


async def test_the_pages_list_a_recorded_session_play_it_show_its_transcript_and_a_failed_ones_reason(
        recorded: tuple[DispatcherProcess, Path], tmp_path: Path) -> None:
    dispatcher, folder = recorded
    base = dispatcher.base_url
    async with api_client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as api:
        spoken = await _spoken_session(api, base)
        killed = await _killed_session(api, dispatcher)
        await _recorded_eval(api, base)

    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    async with Browser(base + "/dashboard", mic, tmp_path / "profile") as page:
        assert await page.wait_for("window.voicefleetStatus && window.voicefleetStatus.state === 'needs-key'", 60)
        await page.evaluate(f"document.getElementById('admin-key').value = {json.dumps(ADMIN_KEY)};"
                            "document.getElementById('key-form').requestSubmit()")
        listed = await page.wait_for(
            "(window.voicefleetStatus.sessions?.sessions || []).map((s) => s.session_id).join(' ')", 90)
        assert spoken in (listed or "") and killed in (listed or ""), (listed, dispatcher.log()[-3000:])
        order = [s["session_id"] for s in json.loads(await page.evaluate(
            "JSON.stringify(window.voicefleetStatus.sessions.sessions)"))]
        assert order.index(killed) < order.index(spoken)  # newest first

        # The releases and capacity beside use, as /releases and /capacity have them.
        assert await page.wait_for("window.voicefleetStatus.releases !== null"
                                   " && window.voicefleetStatus.capacity !== null", 60)
        releases = await page.evaluate("document.getElementById('releases-table').innerText")
        assert "default" in releases and "100 %" in releases, releases
        assert "1/1 ✓" in releases and "s ago" in releases, releases  # its suite's verdict, as EVAL shows it
        capacity = await page.evaluate("document.getElementById('capacity-table').innerText")
        assert "\nsessions\t" in capacity and "\nkey.pages\t" in capacity, capacity  # the cap, the key's share
        assert "recordings: on" in await page.evaluate("document.getElementById('recordings-note').textContent")

        # The failed session's reason, one click away.
        await page.evaluate("document.getElementById('filter-status').value = 'failed';"
                            "document.getElementById('session-filters').requestSubmit()")
        assert await page.wait_for(
            "(window.voicefleetStatus.sessions?.sessions || []).every((s) => s.status === 'failed')"
            " && document.querySelectorAll('#session-list tbody tr').length >= 1", 30)
        assert await page.evaluate(_open(killed))
        reason = await page.wait_for(
            f"window.voicefleetStatus.detail?.id === {json.dumps(killed)}"
            " && !document.getElementById('detail-error').hidden"
            " && document.getElementById('detail-error').textContent", 30)
        assert reason and reason.startswith("Failed: "), reason
        detail = json.loads(await page.evaluate("JSON.stringify(window.voicefleetStatus.detail)"))
        assert detail["session"]["status"] == "failed", detail
        timeline = await page.evaluate("document.getElementById('detail-timeline').innerText")
        assert "SIGKILL" in reason and "\tready\t" in timeline and "recording_missing" in timeline, (reason, timeline)

        # The spoken session: its transcript, and its recording playable from the dispatcher.
        await page.evaluate("document.getElementById('filter-status').value = '';"
                            "document.getElementById('session-filters').requestSubmit()")
        assert await page.wait_for(f"!!document.querySelector('#session-list tr[data-session-id=\"{spoken}\"]')", 30)
        assert await page.evaluate(_open(spoken))
        assert await page.wait_for(f"window.voicefleetStatus.detail?.id === {json.dumps(spoken)}"
                                   " && window.voicefleetStatus.detail.record !== null", 60)
        record = json.loads(await page.evaluate("JSON.stringify(window.voicefleetStatus.detail.record)"))
        assert await page.evaluate("document.getElementById('detail-error').hidden")  # it ended well: no reason
        assert record["kept"] and record["audioUrl"], record
        replies = [t for t in record["turns"] if t["who"] == "bot" and "latency" in t]
        assert replies, record
        shown = await page.evaluate("document.querySelector('#detail-record table.transcript').innerText")
        assert "bot" in shown and f"{replies[0]['latency']:.2f} s" in shown, shown
        source = await page.evaluate("document.querySelector('#detail-record audio').src")
        playable = await page.wait_for(
            "(() => { const a = document.querySelector('#detail-record audio'); a.load();"
            " return new Promise((done) => { a.onloadedmetadata = () => done(a.duration);"
            " a.onerror = () => done(-1); setTimeout(() => done(0), 12000); }); })()", 5)
        async with httpx.AsyncClient(timeout=30) as plain:  # no key: the signed path is the permission
            wav = await plain.get(source)
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav", wav.headers
        assert wav.content[:4] == b"RIFF"
        assert playable and playable > 1.0, playable  # Chromium read the WAV's header: seconds of a call

        # A transcript holding markup is shown as text: no element is made of it, no handler runs.
        # So is a bot's log line: the session's logs.jsonl, its last lines first.
        (transcript,) = folder.rglob(f"{spoken}/transcript.jsonl")
        with transcript.open("a") as lines:
            lines.write(json.dumps({"who": "caller", "text": MARKUP, "start": 0.5, "end": 1.0}) + "\n")
        (logs,) = folder.rglob(f"{spoken}/logs.jsonl")
        with logs.open("a") as lines:
            lines.write(json.dumps({"time": "2026-11-28T00:00:00Z", "level": "error", "logger": "<b>bot</b>",
                                    "message": MARKUP}) + "\n")
        assert await page.evaluate(_open(spoken))
        text = await page.wait_for(
            "window.voicefleetStatus.detail?.record?.turns?.length > 0"
            " && document.querySelector('#detail-record table.transcript')?.innerText", 60)
        assert MARKUP in (text or ""), text
        assert await page.evaluate("document.querySelectorAll('#detail-record img, #detail-record b').length") == 0
        logged = await page.wait_for("window.voicefleetStatus.detail?.logs?.lines?.length > 0"
                                     " && document.querySelector('#detail-logs table.logs')?.innerText", 60)
        assert logged and MARKUP in logged and "<b>bot</b>" in logged, logged
        assert await page.evaluate("document.querySelectorAll('#detail-logs img, #detail-logs b').length") == 0
        cost = await page.evaluate("document.getElementById('detail-cost').innerText")
        assert "machine" in cost and "total" in cost, cost
        assert not await page.evaluate("window.__injected === 1")
        assert ADMIN_KEY not in await page.evaluate("document.documentElement.outerHTML")
        await page.send("Emulation.setDeviceMetricsOverride", width=1280, height=2400, deviceScaleFactor=1,
                        mobile=False)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(SCREENSHOT)

    # The local page, with the client key: a call of its own, then its transcript and recording.
    async with Browser(base + "/", mic, tmp_path / "profile-local") as local:
        assert await local.wait_for("document.readyState === 'complete' && !!window.voicefleet", 30)
        await local.evaluate(f"document.getElementById('api-key').value = {json.dumps(CLIENT_KEY)};"
                             "document.getElementById('connect').click()")
        heard = await local.wait_for("window.voicefleet.botAudioStartedAt !== null", 120)
        assert heard, (json.loads(await local.evaluate("JSON.stringify(window.voicefleet)")), dispatcher.log()[-2000:])
        # It hears the echo: a reply's own speaking turn after the greeting's, however long a loaded machine takes.
        assert await local.wait_for("window.voicefleet.events.filter((e) => e === 'bot-stopped-speaking').length >= 2",
                                    90), json.loads(await local.evaluate("JSON.stringify(window.voicefleet.events)"))
        await local.evaluate("document.getElementById('hangup').click()")
        called = await local.wait_for("window.voicefleet.status === 'ended' && window.voicefleet.sessionId", 60)
        assert await local.wait_for(f"window.voicefleet.recordFor === {json.dumps(called)}"
                                    " && window.voicefleet.record !== null", 120)
        after_call = json.loads(await local.evaluate("JSON.stringify(window.voicefleet.record)"))
        assert after_call["kept"] and after_call["audioUrl"] and after_call["turns"], after_call
        assert await local.evaluate("!!document.querySelector('#record-box audio')")

        # Any session of the key's, listed: the dashboard's, with the markup line, as text.
        await local.evaluate("document.getElementById('recent').click()")
        assert await local.wait_for(f"!!document.querySelector('#recent-list button') && [...document"
                                    f".querySelectorAll('#recent-list button')].some((b) => b.textContent === "
                                    f"{json.dumps(spoken)})", 30)
        await local.evaluate(f"[...document.querySelectorAll('#recent-list button')].find((b) => b.textContent"
                             f" === {json.dumps(spoken)}).click()")
        assert await local.wait_for(f"window.voicefleet.recordFor === {json.dumps(spoken)}"
                                    " && window.voicefleet.record !== null", 60)
        local_record = json.loads(await local.evaluate("JSON.stringify(window.voicefleet.record)"))
        assert local_record["kept"] and local_record["audioUrl"], local_record
        assert await local.evaluate("!!document.querySelector('#record-box audio')")
        assert MARKUP in await local.evaluate("document.querySelector('#record-box table.transcript').innerText")
        assert await local.evaluate("document.querySelectorAll('#record-box img').length") == 0
        await local.send("Emulation.setDeviceMetricsOverride", width=900, height=1400, deviceScaleFactor=1,
                         mobile=False)
        await local.screenshot(SCREENSHOT.with_name("talk-session.png"))

        # A session kept nothing: the page says so, and why (no recording event: the route's answer).
        await local.evaluate(f"[...document.querySelectorAll('#recent-list button')].find((b) => b.textContent"
                             f" === {json.dumps(killed)}).click()")
        said = await local.wait_for(f"window.voicefleet.recordFor === {json.dumps(killed)}"
                                    " && window.voicefleet.record !== null"
                                    " && document.getElementById('record-box').textContent", 60)
        local_killed = json.loads(await local.evaluate("JSON.stringify(window.voicefleet.record)"))

    for requests in (page.requests, local.requests):
        assert not [url for url in requests if ADMIN_KEY in url or CLIENT_KEY in url]
        assert not [url for url in requests if not url.startswith((base, "data:", "blob:"))], requests
    # The killed bot was never called: no audio kept, and the page says why (its timeline's reason).
    assert not local_killed.get("audioUrl") and "no part of the recording arrived" in said, (local_killed, said)
