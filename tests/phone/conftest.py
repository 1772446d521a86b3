from __future__ import annotations

import asyncio
import warnings
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_AUTH

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ECHO_BOT = Path(__file__).with_name("echo_bot.py")  # a user bot in Pipecat's shape
SPEECH = Path(__file__).parents[1] / "fixtures" / "speech16k.wav"
IDLE = 'voicefleet_reserve_bots{provider="local",state="idle"}'


def speech_8k() -> bytes:
    """The speech fixture as a phone line carries it: 8 kHz, 16-bit mono."""
    with wave.open(str(SPEECH)) as w:
        pcm = w.readframes(w.getnframes())
        rate = w.getframerate()
    converted, _ = audioop.ratecv(pcm, 2, 1, rate, 8000, None)
    return converted


def phone_env(reports: Path) -> dict[str, str]:
    """voicefleet's own host (`python -m bot`) running the echo bot, one reserve bot, the carriers' keys."""
    return {
        "BOT_FILE": str(ECHO_BOT),
        "RESERVE_MIN_IDLE": "1",
        "PHONE_TEST_REPORTS": str(reports),
        # The carriers' REST credentials a bot needs to hang a call up itself (Pipecat's
        # serializers refuse to start without them): the test account's, reaching no one here.
        "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000001",
        "TWILIO_AUTH_TOKEN": "test-twilio-auth-token",
        "TELNYX_API_KEY": "test-telnyx-key",
        "PLIVO_AUTH_ID": "MA0001",
        "PLIVO_AUTH_TOKEN": "test-plivo-token",
        # Local bots are given only the variables named for them: the echo bot's and the carriers' keys.
        "LOCAL_BOT_ENV": "PHONE_TEST_REPORTS,TWILIO_ACCOUNT_SID,TWILIO_AUTH_TOKEN,TELNYX_API_KEY,PLIVO_AUTH_ID,"
                         "PLIVO_AUTH_TOKEN",
    }


@pytest.fixture(scope="module")
def phone_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    reports = tmp_path_factory.mktemp("calls")
    env = phone_env(reports)
    with run_dispatcher(tmp_path_factory.mktemp("phone"), env) as running:
        yield running, reports


async def metric(api: httpx.AsyncClient, prefix: str) -> float:
    # Only an admin key reads /metrics: a keyed dispatcher's tests name METRICS_ADMIN among its admin keys.
    headers = METRICS_AUTH if "authorization" in api.headers else None
    for line in (await api.get("/metrics", headers=headers)).text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def wait_for_idle_bot(api: httpx.AsyncClient, count: int = 1) -> None:
    """Until the reserve holds `count` idle bots."""
    for _ in range(900):  # a reserve bot imports Pipecat first (seconds on a busy host)
        if await metric(api, IDLE) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} reserve bots became idle")


async def wait_active_sessions(api: httpx.AsyncClient, wanted: int, timeout: float = 30) -> float:
    """The dispatcher's count of sessions whose machine is up, once it is `wanted` (or the last
    seen at the deadline): a machine's end, whoever owns its session."""
    active = -1.0
    for _ in range(int(timeout * 10)):
        active = await metric(api, 'voicefleet_active_sessions{provider="local",')
        if active == wanted:
            return active
        await asyncio.sleep(0.1)
    return active


async def ended_timeline(api: httpx.AsyncClient, session_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The session's timeline once its bot reported its end."""
    events: list[dict[str, Any]] = []
    for _ in range(int(timeout * 10)):
        events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
        if any(e["event"] == "ended" for e in events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"no end reported: {[e['event'] for e in events]}")
