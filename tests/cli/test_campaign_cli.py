"""`voicefleet calls campaign FILE.csv`: a real dispatcher app on a loopback port with its campaign worker,
Twilio a strict fake on another; the test plays each far end (no answer). The file's other columns ride with
each row, a file larger than a request goes in several (`rows`, then `resume`), the command follows the
campaign to its end and writes the results file; `show ID --results` writes them any time, `stop`/`resume`
change it, and a bad file is refused before anything is sent, naming its line."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dispatcher.settings import Settings
from tests.fakes.server import serve
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.support.campaign_server import campaigns_served
from tests.support.http_client import api_client
from voicefleet.main import voicefleet

FROM = "+14155550199"
NUMBERS = ["+14155550101", "+14155550102", "+14155550103"]


@pytest.fixture
def twilio() -> Iterator[FakeTwilioCalls]:
    with serve(FakeTwilioCalls(create_per_second=50)) as fake:
        yield fake


@pytest.fixture
async def url(twilio: FakeTwilioCalls) -> AsyncIterator[str]:
    async with campaigns_served(twilio, FROM) as base:
        yield base


async def run(url: str, *args: str) -> Result:
    env = {"VOICEFLEET_URL": url, "VOICEFLEET_API_KEY": None, "VOICEFLEET_ADMIN_KEY": None}
    return await asyncio.to_thread(CliRunner().invoke, voicefleet, list(args), env=env, prog_name="voicefleet")


async def unanswered(twilio: FakeTwilioCalls) -> None:
    finished: set[str] = set()
    while True:
        for call in list(twilio.placed):
            if call.sid not in finished:
                finished.add(call.sid)
                await twilio.finish(call.sid, "no-answer")
        await asyncio.sleep(0.05)


def numbers_file(tmp_path: Path, lines: list[str]) -> Path:
    file = tmp_path / "numbers.csv"
    file.write_text("\n".join(lines) + "\n")
    return file


async def test_a_file_s_numbers_are_called_in_several_requests_followed_and_their_results_written(
        url: str, twilio: FakeTwilioCalls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voicefleet.campaigns.REQUEST_BYTES", 60)  # one row a request: rows added, then resumed
    file = numbers_file(tmp_path, ["to,ticket", *(f"{n},T-{i}" for i, n in enumerate(NUMBERS))])
    results = tmp_path / "out.csv"
    playing = asyncio.create_task(unanswered(twilio))
    try:
        ran = await run(url, "calls", "campaign", str(file), "--from", FROM, "--carrier", "twilio", "--concurrency",
                        "2", "--retry", "busy", "--retry-after", "1m", "--attempts", "2", "--results", str(results))
    finally:
        playing.cancel()
    assert ran.exit_code == 0, ran.output
    campaign_id = ran.output.split()[0]
    assert campaign_id.startswith("cmp_") and "finished" in ran.output and "no_answer 3" in ran.output, ran.output
    assert sorted(c.one("To") for c in twilio.placed) == NUMBERS
    rows = list(csv.DictReader(results.open()))
    assert [(r["to"], r["outcome"], r["attempts"]) for r in rows] == [(n, "no_answer", "1") for n in NUMBERS]
    again = tmp_path / "again.csv"
    shown = await run(url, "calls", "campaign", "show", campaign_id, "--results", str(again))
    assert shown.exit_code == 0 and again.read_text() == results.read_text(), shown.output


async def test_stop_and_resume_change_the_campaign(url: str, tmp_path: Path) -> None:
    file = numbers_file(tmp_path, ["to", *NUMBERS])
    started = await run(url, "calls", "campaign", str(file), "--from", FROM, "--detach")
    assert started.exit_code == 0, started.output
    campaign_id = started.output.strip()
    stopped = await run(url, "calls", "campaign", "stop", campaign_id)
    assert stopped.exit_code == 0 and f"campaign {campaign_id} stopped" in stopped.output, stopped.output
    resumed = await run(url, "--json", "calls", "campaign", "resume", campaign_id)
    assert resumed.exit_code == 0 and '"status": "running"' in resumed.output, resumed.output
    missing = await run(url, "calls", "campaign", "show", "cmp_0000000000000000")
    assert missing.exit_code == 1 and "not_found" in missing.output, missing.output


@pytest.mark.parametrize(("lines", "said"), [
    (["number", "+14155550101"], "header naming the `to` column"),
    (["to,name", "+14155550101,a", "0044 20,b"], "line 3"),
    (["to"], "no rows"),
])
async def test_a_bad_file_is_refused_naming_its_line_before_anything_is_sent(
        url: str, twilio: FakeTwilioCalls, tmp_path: Path, lines: list[str], said: str) -> None:
    ran = await run(url, "calls", "campaign", str(numbers_file(tmp_path, lines)), "--from", FROM)
    assert ran.exit_code == 2 and said in ran.output, ran.output
    assert twilio.placed == []


async def test_retry_options_need_the_outcomes_to_retry(url: str, tmp_path: Path) -> None:
    ran = await run(url, "calls", "campaign", str(numbers_file(tmp_path, ["to", NUMBERS[0]])), "--from", FROM,
                    "--attempts", "3")
    assert ran.exit_code == 2 and "--retry OUTCOMES" in ran.output, ran.output


async def test_an_admin_stops_a_client_key_s_campaign_and_voicefleet_audit_names_it(
        twilio: FakeTwilioCalls) -> None:
    admin, client = "vf-admin-campaign-cli-3c4d5e6f7a8b", "vf-client-campaign-cli-9a8b7c6d5e4f"
    keys = Settings.from_env({"DISPATCHER_API_KEYS": f"client:{client}", "DISPATCHER_ADMIN_KEYS": admin})
    async with campaigns_served(twilio, FROM, keys, callers="client") as base:
        async with api_client(base_url=base, timeout=30) as api:
            made = await api.post("/campaigns", headers={"Authorization": f"Bearer {client}"},
                                  json={"rows": [{"to": NUMBERS[0]}], "from": FROM, "carrier": "twilio",
                                        "start": False})
            assert made.status_code == 201, made.text
        campaign_id = made.json()["id"]
        env = {"VOICEFLEET_URL": base, "VOICEFLEET_API_KEY": admin, "VOICEFLEET_ADMIN_KEY": admin}
        stopped = await asyncio.to_thread(CliRunner().invoke, voicefleet, ["calls", "campaign", "stop", campaign_id],
                                          env=env, prog_name="voicefleet")
        assert stopped.exit_code == 0, stopped.output
        trail = await asyncio.to_thread(CliRunner().invoke, voicefleet, ["audit"], env=env, prog_name="voicefleet")
    assert trail.exit_code == 0, trail.output
    assert [line.split()[-3:-1] for line in trail.output.splitlines() if campaign_id in line] == [
        ["campaign.stop", campaign_id]], trail.output
