"""A session whose pipeline has a service that can no longer do its job (Pipecat's unusable
processor, as Deepgram's STT that cannot reach Deepgram): the session keeps running, as Pipecat
lets the bot decide, but GET /sessions says what broke (its `error`, which the bot reports over its
channel, as in the cloud) instead of a plain `joined` until the idle timeout, and the bot's log
lines in the dispatcher's console name their session. An exception in one of the bot's event
handlers, which Pipecat only logs, is the session's `error` too."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.pipecat_call import pipecat_call

REPO = Path(__file__).resolve().parents[3]
BOTS = REPO / "tests" / "bots"


async def joined_session_with_error(tmp_path: Path, bot: Path, marker: str) -> tuple[str, dict[str, object], str]:
    """A local dispatcher running `bot` cold, a peer connected to its session: (the session's id, its
    answer once its `error` holds `marker` and it is no longer `started`, the dispatcher's log)."""
    async with pipecat_call(tmp_path, bot) as call:
        # The bot starts the user's pipeline as the offer arrives, so the processor's error can be
        # reported before the peer connects: wait for both, in whichever order.
        session: dict[str, object] = {}
        for _ in range(300):
            session = (await call.api.get(f"/sessions/{call.session_id}")).json()
            if marker in str(session.get("error")) and session.get("status") != "started":
                break
            await asyncio.sleep(0.1)
        log = call.dispatcher.log()
    return call.session_id, session, log


async def test_an_unusable_service_shows_in_the_session_and_the_log_names_the_session(tmp_path: Path) -> None:
    session_id, session, log = await joined_session_with_error(tmp_path, BOTS / "unusable_service.py", "UnreachableSTT")
    assert session["status"] == "joined", session  # still running: the bot decides
    assert "UnreachableSTT" in str(session["error"]), session
    assert "cannot reach the speech service" in str(session["error"]), session
    degraded = [line for line in log.splitlines() if "session degraded" in line]
    assert degraded and all(f"session {session_id}" in line for line in degraded), log[-3000:]


async def test_an_exception_in_an_event_handler_is_the_sessions_error_with_its_file_and_line(tmp_path: Path) -> None:
    """Pipecat logs a handler's exception and goes on: the session's `error` says which handler, where
    and what (a Daily-only `participant["id"]` under SmallWebRTC), not the log alone."""
    bot = BOTS / "broken_handler.py"
    _, session, _ = await joined_session_with_error(tmp_path, bot, "on_client_connected")
    assert session["status"] == "joined", session  # Pipecat goes on, and so does the session
    assert str(session["error"]).startswith(
        f"{bot}:18: event handler 'on_client_connected' of SmallWebRTCTransport#0 raised TypeError: "
    ), session
    assert "object is not subscriptable" in str(session["error"]), session
    assert "SmallWebRTC's handlers are given its connection" in str(session["error"]), session
