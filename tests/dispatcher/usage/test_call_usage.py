"""A call's services, end to end: a dispatcher process runs a real bot host on the test bot
tests/bots/metered.py, whose stand-in STT, LLM and TTS meter themselves as Pipecat's services do. Its
`GET /sessions/{id}` and its `report.json` carry what the services counted, priced as the table says
(gpt-4o-mini and tts-1 are in it; the stand-in STT's model is not: "not priced"). A direct call: its
relay's share is measured and $0.00, said so."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.support.pipecat_call import pipecat_call

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "bots"))
import metered  # noqa: E402  the test bot's own figures


async def test_a_calls_cost_carries_what_its_services_counted_priced_by_the_table(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    bot = REPO / "tests" / "bots" / "metered.py"
    async with pipecat_call(tmp_path, bot, RECORDING="on", RECORDING_DESTINATION=str(calls)) as call:
        api, session_id = call.api, call.session_id
        for _ in range(300):
            events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
            if any(e["event"] == "first_audio" for e in events):
                break
            await asyncio.sleep(0.1)
        await call.peer.close()
        session: dict = {}
        for _ in range(300):  # the client left: the pipeline ends, the bot reports its end
            session = (await api.get(f"/sessions/{session_id}")).json()
            if session.get("status") == "ended" and not session["cost"]["estimated"]:
                break
            await asyncio.sleep(0.1)
        reports = []
        for _ in range(300):
            reports = list(calls.rglob("report.json"))
            if reports:
                break
            await asyncio.sleep(0.1)
    services = session["cost"]["services"]
    assert services["reported"] is True
    rows = {row["kind"]: row for row in services["usage"]}
    prompt = sum(t.prompt_tokens for t in metered.LLM_TURNS)
    cached = sum(t.cache_read_input_tokens or 0 for t in metered.LLM_TURNS)
    completion = sum(t.completion_tokens for t in metered.LLM_TURNS)
    assert (rows["llm"]["prompt_tokens"], rows["llm"]["cache_read_input_tokens"],
            rows["llm"]["completion_tokens"]) == (prompt, cached, completion)
    llm_usd = ((prompt - cached) * 0.15 + cached * 0.075 + completion * 0.60) / 1e6  # prices.json's gpt-4o-mini
    tts_usd = len(metered.REPLY) * 15.0 / 1e6  # tts-1
    assert rows["llm"]["usd"] == pytest.approx(llm_usd, abs=1e-6)
    assert rows["tts"]["usd"] == pytest.approx(tts_usd, abs=1e-6)
    assert rows["stt"]["audio_seconds"] == sum(metered.HEARD_SECONDS) and rows["stt"]["priced"] == "not priced"
    assert services["not_priced"] == ["stt standin-stt-1"]
    assert services["usd"] == pytest.approx(llm_usd + tts_usd, abs=1e-6)
    assert session["cost"]["total"] == pytest.approx(session["cost"]["machine_usd"] + services["usd"], abs=1e-6)
    assert "stt standin-stt-1: not priced" in session["cost"]["not_counted"]
    # A direct call (host candidates on the loopback, no TURN): measured, not relayed, its relay $0 and said so.
    relay = session["cost"]["relay"]
    assert (relay["relayed"], relay["local_candidate"], relay["usd"]) == (False, "host", 0.0), relay
    assert relay["remote_candidate"] in ("host", "prflx") and relay["bytes_sent"] > 0 and relay["why"], relay
    assert session["cost"]["relay_usd"] == 0.0
    assert not any(line.startswith("TURN relay") for line in session["cost"]["not_counted"])
    [report] = reports
    written = json.loads(report.read_text())["cost"]
    assert written["services"] == services and written["relay"] == relay
