"""A SIP call whose bot's side ended first: its report.json, written as the session ends, waits (until
EDGE_END_WAIT_SECONDS past the session's end) for the edge's end, which comes after it, and carries it
(`ended.sip`) and the call's minutes as the edge counted them (`cost.telephony`)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from botchannel.recording import wav_header
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import PART_PATH, SignedPaths
from dispatcher.observability import sip_end
from dispatcher.reserve.prices import BotPrice
from dispatcher.sessions.cost import SessionCosts

SESSION = "0123456789abcdef01234567"
LINE = {"trunk": "twilio", "direction": "inbound", "usd_per_minute": 0.6, "increment_seconds": 1}
EDGE_END = {"by": "edge", "how": "bye", "reason": "the bot's side ended", "answered_seconds": 90.0}


async def test_a_sip_calls_report_waits_for_the_edges_late_end_and_carries_it_and_its_price(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sip_end, "EDGE_END_WAIT_SECONDS", 60.0)  # a stalled machine's late end still in time
    t0 = time.time() - 62  # the wait is counted from the session's `ended`, just now
    events: list[dict[str, Any]] = [
        {"event": "requested", "at": t0}, {"event": "launched", "at": t0 + 1}, {"event": "telephony", "at": t0 + 1,
                                                                                 **LINE},
        {"event": "joined", "at": t0 + 2}, {"event": "ended", "at": t0 + 62, "reason": "completed"}]

    async def read(session_id: str) -> list[dict[str, Any]]:
        return list(events)

    async def cost(session_id: str, timeline: list[dict[str, Any]]) -> dict[str, Any] | None:
        priced = SessionCosts("fly", BotPrice(730.0, "1 vCPU, 2 GB", "test")).of(timeline, running=False)
        return None if priced is None else priced.as_json()

    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    kept = SessionRecordings(ArtifactSettings(policy="on"), store, note=lambda *_, **__: None, events=read,
                             region="eu", provider="fly", clock=lambda: t0, cost=cost)
    await kept.plan_for(SESSION, transport="exotel", release="v1", key_name=None)
    data = wav_header(16000) + b"\1\0" * 16000
    url = (await kept.part_url(SESSION, {"part": 1}))["url"]
    assert await store.accept_part(url.removeprefix(PART_PATH), data)
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": len(data), "degraded": []})

    async def edge_tells_late() -> None:
        await asyncio.sleep(1.0)  # the edge's BYE once the stream closed, then its word to the dispatcher
        events.append({"event": "sip_ended", "at": t0 + 63, **EDGE_END})

    telling = asyncio.create_task(edge_tells_late())
    report = await kept.finish(SESSION, "the bot ended the session")
    await telling
    assert report is not None
    assert report["ended"]["sip"] == {"by": "edge", "how": "bye", "reason": "the bot's side ended"}
    assert (report["cost"]["telephony"]["seconds"], report["cost"]["telephony"]["usd"]) == (90.0, 0.9)
    [written] = tmp_path.rglob("report.json")
    assert json.loads(written.read_text())["ended"]["sip"]["by"] == "edge"
