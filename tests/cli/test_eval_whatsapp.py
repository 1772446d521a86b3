"""`voicefleet eval` over a WhatsApp call: the booking line, run by a real `python -m dispatcher` that takes
WhatsApp calls (Meta's side a fake that must hear nothing of them), answers a scenario placed as
`transport = "whatsapp"` through the eval entry with the number's own key: audio alone, its words read
from the session's transcript, the session marked an eval's. With another key the call is refused,
naming the fix, and the suite fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.support.eval_verdicts import skip_if_inconclusive
from tests.support.examples import BOOKING
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a real bot hearing real speech over WebRTC

KEY = "whatsapp-eval-cli-key-0123456789"
OTHER_KEY = "whatsapp-eval-cli-other-0123456789"
HOURS = BOOKING / "scenarios" / "opening_hours.toml"


@pytest.fixture(scope="module")
def meta() -> Iterator[FakeWhatsApp]:
    with serve(FakeWhatsApp()) as fake:
        yield fake


@pytest.fixture(scope="module")
def dispatcher(meta: FakeWhatsApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    bot = BOOKING / "bot.py"
    env = {**meta.env(f"{PHONE_NUMBER_ID}=support"), "BOT_RELEASES": f"stable={bot},next={bot}",
           "RELEASE_WEIGHTS": "stable=100", "DISPATCHER_API_KEYS": f"support:{KEY},other:{OTHER_KEY}",
           "RECORDING": "off", "RECORDING_TRANSCRIPT": "on", "RESERVE_MAX_IDLE": "0",
           "RECORDING_DESTINATION": str(tmp_path_factory.mktemp("recordings"))}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as process:
        yield process


def over_whatsapp(folder: Path) -> Path:
    path = folder / "hours_over_whatsapp.toml"
    path.write_text(HOURS.read_text().replace('name = "opening hours"', 'name = "hours over whatsapp"\n'
                                              f'transport = "whatsapp"\nwhatsapp_number = "{PHONE_NUMBER_ID}"'))
    return path


def run_eval(url: str, key: str, *args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["eval", *args, "--url", url], prog_name="voicefleet",
                              env={"VOICEFLEET_URL": None, "VOICEFLEET_API_KEY": key, "VOICEFLEET_ADMIN_KEY": None})


def sessions_of(dispatcher: DispatcherProcess, key: str) -> list[dict[str, Any]]:
    listed = httpx.get(f"{dispatcher.base_url}/sessions", params={"limit": 100},
                       headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    return list(listed["sessions"])


def test_the_booking_line_answers_a_whatsapp_scenario_pinned_and_marked_an_eval(
        meta: FakeWhatsApp, dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    result = run_eval(dispatcher.base_url, KEY, str(over_whatsapp(tmp_path)), "--release", "next", "--json")
    summary = json.loads(result.stdout)
    scenario = summary["scenarios"][0]
    assert summary["release"] == "next"  # pinned, as a web eval's start is
    listed = {s["session_id"]: s for s in sessions_of(dispatcher, KEY)}
    session = listed[scenario["sessions"][0]]
    assert session["eval"] is True and session["release"] == "next", session
    assert (session.get("whatsapp") or {}).get("call_id", "").startswith("eval-"), session
    assert meta.calls == []  # nothing of it reached Meta
    assert [s for s in listed.values() if s["status"] not in ("ended", "failed")] == []
    skip_if_inconclusive(result)
    assert result.exit_code == 0, result.output
    assert scenario["passed"] == 1 and scenario["turn_latency_ms"]["p50"], scenario


def test_a_whatsapp_scenario_run_with_another_key_is_refused_naming_the_numbers_key(
        dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    result = run_eval(dispatcher.base_url, OTHER_KEY, str(over_whatsapp(tmp_path)), "--json")
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout)["scenarios"][0]["failures"][0]["failure"]
    assert "unknown_whatsapp_number" in failure and "WHATSAPP_NUMBERS" in failure, failure
    assert sessions_of(dispatcher, OTHER_KEY) == []  # nothing started for it
