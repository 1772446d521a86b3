"""N7: at LOG_LEVEL=debug, neither a carrier's signature nor a frame's content reaches the log.

The websockets library logs every handshake header and the head and tail of every frame at DEBUG:
a Twilio Media Streams upgrade's `X-Twilio-Signature` (valid for every call until the auth token
changes), and the channel's `assign`, whose tail is the caller's `body`. A real dispatcher with
real bots (whose own standard logging a user's bot turned to DEBUG) serves a signed Twilio upgrade
and a session with a recognisable body; its log holds neither, and does hold the session's lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from dispatcher.phone.signatures import twilio_signature
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher and real bots

KEY = "debug-log-key-0123456789"
TWILIO_TOKEN = "twilio-auth-token-debug-log-0123456789"
PUBLIC = "https://calls.example.com"
BODY_MARKER = "body-zq4711x"  # short: the frame log shows a frame's last ~25 characters
VERBOSE_BOT = Path(__file__).resolve().parent / "bots" / "verbose.py"
WAIT = 60.0


@pytest.fixture(params=["text", "json"])  # LOG_FORMAT: the same filters before either format
def dispatcher(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DispatcherProcess]:
    env = {"LOG_FORMAT": request.param,
        "LOG_LEVEL": "debug", "BOT_LOG_LEVEL": "DEBUG", "BOT_FILE": str(VERBOSE_BOT), "DISPATCHER_API_KEYS": KEY,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TWILIO_SIGNED_STREAMS": "1",  # the signed upgrade under test
        "PHONE_PUBLIC_URL": PUBLIC, "RESERVE_MIN_IDLE": "1",
    }  # fmt: skip
    with run_dispatcher(tmp_path, env) as running:
        yield running


async def until_logged(dispatcher: DispatcherProcess, text: str) -> None:
    for _ in range(int(WAIT / 0.1)):
        if text in dispatcher.log():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} never reached the log:\n{dispatcher.log()[-4000:]}")


async def test_a_debug_log_holds_no_signature_and_no_body(dispatcher: DispatcherProcess) -> None:
    async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
        headers = {"Authorization": f"Bearer {KEY}"}
        started = await api.post("/start?wait=started", json={"body": {"note": BODY_MARKER}}, headers=headers)
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        # The bot took the assign (the frame that carries the body) once it reports it connected.
        await until_logged(dispatcher, f"session {session_id}")

        signature = twilio_signature(TWILIO_TOKEN, f"{PUBLIC.replace('https', 'wss')}/ws/twilio")
        ws_url = dispatcher.base_url.replace("http://", "ws://") + "/ws/twilio"
        async with connect(ws_url, additional_headers={"X-Twilio-Signature": signature}, proxy=None,
                           open_timeout=WAIT):
            pass  # admitted by the signature: the upgrade's headers went through the server's debug log
        await api.delete(f"/sessions/{session_id}", headers=headers)
        await until_logged(dispatcher, "WebSocket /ws/twilio")

    log = dispatcher.log()
    assert "DEBUG" in log and "connection is OPEN" in log, "control: this is a debug log with websockets' lines"
    assert BODY_MARKER not in log, "the caller's body reached the log"
    assert signature not in log, "the Twilio signature reached the log"
    assert KEY not in log
