"""A bot SIGKILLed mid-call still has its services' use counted, as it reported it during the call:
a dispatcher process runs a real bot host on tests/bots/metered.py (its stand-in STT, LLM and TTS
meter themselves as Pipecat's do, as the pipeline starts), the host sends its use so far, the bot is
killed before any `ended` report, and `GET /usage` and the listing's cost count what the stand-ins
counted: once, whatever the machine's end and the grace after it do; `GET /sessions/{id}` prices the
same report."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from dispatcher.sessions.cost import PARTIAL, PARTIAL_RELAY
from tests.support.pipecat_call import pipecat_call
from tests.support.processes import children_of

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "bots"))
import metered  # noqa: E402  the test bot's own figures


async def events_of(api: httpx.AsyncClient, session_id: str) -> list[str]:
    return [e["event"] for e in (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]]


async def until(check, what: str, timeout: float = 60.0):  # noqa: ANN001, ANN201
    for _ in range(int(timeout * 10)):
        if found := await check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never {what}")


TEAM_KEY = "team-killed-usage-key-4b81c2"
ADMIN_KEY = "admin-killed-usage-key-9e03d7"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.mark.slow  # a real bot host and a WebRTC call
@pytest.mark.timeout(300)
async def test_a_killed_bots_use_is_counted_up_to_its_last_report_once_in_every_view(tmp_path: Path) -> None:
    """`GET /usage`, the listing, `GET /sessions/{id}`, its recording's `report.json` and its key's spend
    budget count the services as the bot last reported them, once (one call: each view is read after
    the kill; the machine is priced at $0 here, so the spend is the services')."""
    bot_file, calls = REPO / "tests" / "bots" / "metered.py", tmp_path / "calls"
    async with pipecat_call(tmp_path, bot_file, key=TEAM_KEY, USAGE_REPORT_SECONDS="1", RECORDING="on",
                            RECORDING_DESTINATION=str(calls), DISPATCHER_API_KEYS=f"team:{TEAM_KEY}",
                            DISPATCHER_ADMIN_KEYS=ADMIN_KEY, RESERVE_HOT_DOLLARS_PER_MONTH="0") as call:
        api, session_id = call.api, call.session_id
        budget = await api.patch("/capacity", json={"budget.team.spend-month": 100}, headers=ADMIN)
        assert budget.status_code == 200, budget.text

        async def reported() -> bool:
            return "usage_reported" in await events_of(api, session_id)

        await until(reported, "the bot's use reported during the call")
        (bot,) = children_of(call.dispatcher.process.pid)
        os.kill(bot, signal.SIGKILL)

        async def by_model() -> dict | None:
            body = (await api.get("/usage?by=model", headers=ADMIN)).json()  # an admin's reads are not rationed
            return body if body["rows"] else None

        async def report() -> list[Path]:
            return list(calls.rglob("report.json"))

        async def spent() -> float:
            # Until the session's close reaches the ledger its start reserve is held (at least
            # BUDGET_START_RESERVE_USD, $11.16 here); its services here cost well under a dollar.
            values = (await api.get("/capacity", headers=ADMIN)).json()["values"]
            in_use = float(values["budget.team.spend-month"]["in_use"] or 0.0)
            return in_use if in_use < 1.0 else 0.0

        await until(by_model, "the killed session in GET /usage")
        [written] = await until(report, "the killed session's report.json")
        spend = await until(spent, "the services' spend in the key's budget", timeout=30)
        await asyncio.sleep(5)  # past the machine's end and its grace: nothing more is added
        body = (await api.get("/usage?by=model&since=1d", headers=ADMIN)).json()  # not the answer cached above
        totals = (await api.get("/usage", headers=ADMIN)).json()["totals"]
        events = await events_of(api, session_id)
        listed = (await api.get("/sessions")).json()["sessions"]
        read = (await api.get(f"/sessions/{session_id}")).json()
        spend_after = await spent()
    assert "ended" not in events and "machine_ended" in events, events  # killed: no report of its end
    rows = {row["model"]: row for row in body["rows"]}
    assert rows["llm:gpt-4o-mini"]["units"] == {
        "prompt_tokens": sum(t.prompt_tokens for t in metered.LLM_TURNS),
        "cache_read_input_tokens": sum(t.cache_read_input_tokens or 0 for t in metered.LLM_TURNS),
        "completion_tokens": sum(t.completion_tokens for t in metered.LLM_TURNS)}
    assert rows["tts:tts-1"]["units"] == {"characters": len(metered.REPLY)}
    assert rows["stt:standin-stt-1"]["units"] == {"audio_seconds": sum(metered.HEARD_SECONDS)}
    llm_usd = sum(((t.prompt_tokens - (t.cache_read_input_tokens or 0)) * 0.15
                   + (t.cache_read_input_tokens or 0) * 0.075 + t.completion_tokens * 0.60) / 1e6
                  for t in metered.LLM_TURNS)
    assert rows["llm:gpt-4o-mini"]["cost_usd"] == pytest.approx(llm_usd, abs=1e-6)
    assert totals["sessions"] == 1 and totals["services_usd"] == pytest.approx(
        llm_usd + len(metered.REPLY) * 15.0 / 1e6, abs=1e-6)
    [entry] = [item for item in listed if item["session_id"] == session_id]
    assert entry["cost_usd"] == pytest.approx(totals["cost_usd"], abs=1e-6)
    # …and its own read says the same: the services as last reported, not "not reported".
    cost, read = json.loads(written.read_text())["cost"], read["cost"]
    assert read["services"]["usd"] == pytest.approx(totals["services_usd"], abs=1e-6), read
    assert read["services"]["reported"] is True and read["services"]["usd"] > 0, read
    assert cost["services"] == read["services"], (cost, read)  # as last reported, not "not reported"
    assert cost["estimated"] is True and PARTIAL in cost["not_counted"], cost  # marked as the GET marks it
    spend_of_the_services = pytest.approx(read["services"]["usd"] + read["relay_usd"], abs=1e-6)
    assert spend == spend_of_the_services and spend_after == spend_of_the_services, (spend, spend_after, read)
    # Its WebRTC transport, as last reported during the call too: a direct call, $0, marked partial.
    assert read["relay"]["relayed"] is False and read["relay"]["bytes_sent"] > 0 and cost["relay"] == read["relay"]
    assert PARTIAL_RELAY in cost["not_counted"], cost
