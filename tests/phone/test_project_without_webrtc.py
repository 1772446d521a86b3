"""A phone-only project run locally as its team runs it: its own interpreter (`BOT_PYTHON`, a
Python without aiortc, as `pipecat-ai[websocket,silero]` installs it) and its own bot.py in
twilio-chatbot/inbound's shape (tests/fixtures/projects/twilio_inbound). The local reserve keeps
a bot warm for its calls instead of relaunching bots that die importing aiortc; a web session,
which needs WebRTC, fails with the extra to add; the bot runs in its own folder."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.phone.conftest import metric, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_calls import place_call
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.venvs import venv_without

pytestmark = pytest.mark.slow  # real processes importing Pipecat

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "tests" / "fixtures" / "projects" / "twilio_inbound"


@pytest.fixture(scope="module")
def phone_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    project = tmp_path_factory.mktemp("project") / "twilio_inbound"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("uv.lock"))
    python = venv_without(tmp_path_factory.mktemp("venv") / "venv", "aiortc")
    env = {"BOT_FILE": str(project / "bot.py"), "BOT_PYTHON": str(python), "RESERVE_MIN_IDLE": "1"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running, project


async def test_a_bot_without_aiortc_stays_warm_for_calls_and_runs_in_its_own_folder(
    phone_only: tuple[DispatcherProcess, Path],
) -> None:
    dispatcher, project = phone_only
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        warm_before = await metric(api, 'voicefleet_reserve_claims_total{outcome="warm_hit"')
        call, _ = await place_call(api, "twilio", {})
        mark = project / "call_started.txt"  # the bot writes it by a relative name, as the example's recorder
        for _ in range(300):  # the bot's write_text creates the file before it writes: wait for the text
            if mark.exists() and mark.read_text():
                break
            await asyncio.sleep(0.1)
        assert mark.read_text() == call.call_id
        assert not (REPO / "call_started.txt").exists()  # not into the dispatcher's working directory
        assert await metric(api, 'voicefleet_reserve_claims_total{outcome="warm_hit"') == warm_before + 1
        await call.hang_up()
        assert await wait_active_sessions(api, 0) == 0
    assert "Traceback" not in dispatcher.log()


async def test_a_web_session_without_aiortc_fails_naming_the_webrtc_extra(
    phone_only: tuple[DispatcherProcess, Path],
) -> None:
    dispatcher, _ = phone_only
    async with api_client(base_url=dispatcher.base_url, timeout=60) as api:
        answer = await api.post("/start?wait=started", json={})
        assert answer.status_code == 502, answer.text
        message = answer.json()["error"]["message"]
        assert "aiortc" in message and "pipecat-ai[webrtc]" in message, message
        assert "exit code 2" in message or "config" in message, message
