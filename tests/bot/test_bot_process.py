"""The bot as the local machines provider runs it: a subprocess, a ready line, HTTP signalling,
a real aiortc peer, and the exit codes of the lifecycle contract."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from tests.bot.conftest import READY_TIMEOUT, SPEECH_WAV, BotProcess, SpawnBot, bot_env, start_bot
from tests.e2e.recording_checks import loud_seconds
from tests.support.audio import BOT_AUDIO_RMS, echo_similarity, read_wav, rms
from tests.support.processes import wait_until_catching
from tests.support.relay_client import whole_echo
from tests.support.webrtc_client import OfferRejected, WebRTCClient, post_json


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def send(method: str, url: str, data: str | bytes) -> tuple[int, str, dict[str, object]]:
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.request(method, url, data=data, headers=headers) as response:
        text = await response.text()
        return response.status, response.content_type, json.loads(text)


@pytest.fixture(scope="module")
def waiting_bot() -> Iterator[BotProcess]:
    """One bot that never gets a peer, shared by the tests that leave its state alone. They come first in
    the file: its connect timeout runs from its start, and a busy machine's bots after them took longer."""
    bot = start_bot(["--port", "0", "--session-id", "s-waiting", "--connect-timeout", "300"], bot_env())
    try:
        bot.ready = bot.next_event("ready", READY_TIMEOUT)
        yield bot
    finally:
        bot.proc.kill()
        bot.proc.wait(5)


async def test_ready_line_reports_the_bound_port_and_pid(waiting_bot: BotProcess) -> None:
    bot = waiting_bot
    ready = bot.ready
    assert ready is not None
    assert (ready["pid"], ready["session_id"]) == (bot.proc.pid, "s-waiting")
    assert isinstance(ready["port"], int) and ready["port"] > 0
    with socket.create_connection(("127.0.0.1", ready["port"]), timeout=5):
        pass
    assert await get_json(f"{bot.base_url}/status") == (200, {"state": "waiting", "session_id": "s-waiting"})


@pytest.mark.parametrize(
    ("method", "payload", "code"),
    [
        ("POST", "{not json", "invalid_json"),
        ("POST", "[1, 2]", "invalid_json"),
        ("POST", '{"type": "offer"}', "invalid_offer"),
        ("POST", '{"sdp": "v=0", "type": "answer"}', "invalid_offer"),
        ("POST", '{"sdp": "this is not sdp", "type": "offer"}', "invalid_offer"),
        ("PATCH", "{not json", "invalid_json"),
        ("PATCH", '{"pc_id": 5}', "invalid_patch"),
    ],
)
async def test_bad_signalling_requests_get_400_json_errors(
    waiting_bot: BotProcess, method: str, payload: str, code: str
) -> None:
    bot = waiting_bot
    status, content_type, body = await send(method, bot.offer_url, payload)
    assert (status, content_type) == (400, "application/json")
    assert body["error"]["code"] == code  # type: ignore[index]
    assert "Traceback" not in json.dumps(body)
    assert await get_json(f"{bot.base_url}/status") == (
        200,
        {"state": "waiting", "session_id": bot.ready["session_id"]},
    )  # type: ignore[index]


async def test_trickled_candidates_for_an_unknown_peer_get_404(waiting_bot: BotProcess) -> None:
    bot = waiting_bot
    status, _, body = await send("PATCH", bot.offer_url, json.dumps({"pc_id": "nope", "candidates": []}))
    assert status == 404 and body["error"]["code"] == "unknown_pc_id"  # type: ignore[index]


async def test_sigint_before_any_peer_exits_0(waiting_bot: BotProcess) -> None:
    """The waiting bot's last use (tests run in file order, a file on one worker): it has never had a peer."""
    bot = waiting_bot
    bot.proc.send_signal(signal.SIGINT)
    assert bot.wait(10) == 0
    assert bot.next_event("ended", 1)["reason"] == "signal"


def turns_heard(bot: BotProcess) -> list[str]:
    """The bot's own account of the turns: its VAD's starts and stops, the parrot's replies and retractions."""
    words = ("parrot:", "forcing speech stop", "on_speech_st")
    return [line.rsplit(" - ", 1)[-1].strip() for line in bot.stderr_lines if any(w in line for w in words)]


async def test_client_speech_gets_non_silent_audio_back_after_the_utterance(spawn_bot: SpawnBot) -> None:
    """Over the same connected peer (a bot serves one peer ever): the session keeps the start body when the
    offer carries no requestData, trickled candidates for the peer are accepted, and a second peer is refused."""
    env = bot_env(BOT_LOG_LEVEL="DEBUG", VOICEFLEET_BODY=json.dumps({"from_start": 1}))
    bot = spawn_bot("--connect-timeout", "30", env=env)
    async with WebRTCClient(bot.offer_url) as client:
        connected = bot.next_event("connected", 10)
        assert connected["pc_id"] == client.pc_id
        assert connected["body_keys"] == ["from_start"], "without requestData the session keeps the start body"
        assert (await get_json(f"{bot.base_url}/status"))[1]["state"] == "connected"
        await client.talk(SPEECH_WAV, listen_seconds=0.2)
        # Until the whole echo (~0.5 s + 4.4 s) is heard: a starved bot's reply comes late, not short.
        result = await whole_echo(client, read_wav(SPEECH_WAV).seconds, deadline_seconds=30)
        behind = client.mic.behind()
        candidate = {"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}  # end-of-candidates
        trickled = await send("PATCH", bot.offer_url, json.dumps({"pc_id": client.pc_id, "candidates": [candidate]}))
        with pytest.raises(OfferRejected) as rejected:
            async with WebRTCClient(bot.offer_url, connect_timeout=5):
                pass
    assert trickled[0::2] == (200, {"status": "success"}), "trickled candidates for the active peer are accepted"
    second = (rejected.value.status, rejected.value.body["error"]["code"])
    assert second == (409, "peer_already_connected"), "a second peer is refused while one is connected"
    why = f"{result.summary()}; the mic {behind:.2f} s behind; the bot: {turns_heard(bot)}"
    assert result.replied, why
    assert result.connect_to_first_audio is not None, "the greeting should arrive on connect"
    assert result.reply_audio.size and rms(result.reply_audio) > BOT_AUDIO_RMS / 4, why
    # The echo is the utterance: at least most of the fixture's 3.2 s of loud audio came back, after the
    # beep. Measured on the audio's own clock: a loaded test process reads a second's backlog of frames
    # at once, and timed as they arrived that second lasted no time at all.
    echoed = sum(end - start for start, end in loud_seconds(result.reply_audio, result.reply_sample_rate))
    arrived = sum(s.seconds for s in result.segments if s.start > (result.speech_end_at or 0))
    assert echoed > 2.5, f"{echoed:.2f} s echoed ({arrived:.2f} s as it arrived); {why}"
    assert echo_similarity(read_wav(SPEECH_WAV), result.reply_audio, result.reply_sample_rate) > 0.7, why
    assert bot.wait(15) == 0
    assert bot.next_event("ended", 5)["reason"] == "peer_disconnected"


async def test_sigterm_mid_session_exits_0_within_seconds(spawn_bot: SpawnBot) -> None:
    bot = spawn_bot()
    async with WebRTCClient(bot.offer_url) as client:
        bot.next_event("connected", 10)
        client.mic.play(np.tile(np.int16([0, 12000, 0, -12000]), 16000))  # the user is mid-utterance
        time.sleep(1.0)
        bot.proc.send_signal(signal.SIGTERM)
        code = bot.wait(10)
    # 0, not the SIGALRM of its exit deadline (bot.lifecycle.EXIT_DEADLINE_SECONDS): it ended within
    # the deadline by itself; its wall time is also the machine's load, so it is not asserted.
    assert code == 0
    assert bot.next_event("ended", 1)["reason"] == "signal"


async def test_no_peer_within_connect_timeout_exits_3(spawn_bot: SpawnBot) -> None:
    bot = spawn_bot("--connect-timeout", "1")
    assert bot.wait(15) == 3
    assert bot.next_event("ended", 1)["reason"] == "connect_timeout"


async def test_max_duration_ends_the_session_with_exit_0(spawn_bot: SpawnBot) -> None:
    bot = spawn_bot("--max-duration", "1.5", "--connect-timeout", "30")
    assert bot.wait(15) == 0
    assert bot.next_event("ended", 1)["reason"] == "max_duration"


async def test_max_duration_ends_a_session_whose_peer_stays_and_talks(spawn_bot: SpawnBot) -> None:
    bot = spawn_bot("--max-duration", "3", "--idle-timeout", "60")
    async with WebRTCClient(bot.offer_url) as client:
        bot.next_event("connected", 10)
        client.mic.play(np.tile(np.int16([0, 12000, 0, -12000]), 4 * 16000 * 10))  # talks past the cap
        code = bot.wait(15)
    assert code == 0
    assert bot.next_event("ended", 1)["reason"] == "max_duration"


async def test_idle_session_ends_with_exit_0(spawn_bot: SpawnBot) -> None:
    bot = spawn_bot("--idle-timeout", "1.5")
    async with WebRTCClient(bot.offer_url):
        bot.next_event("connected", 10)
        code = bot.wait(15)  # the client stays connected but silent
    assert code == 0
    assert bot.next_event("ended", 1)["reason"] == "idle_timeout"


async def test_port_already_in_use_exits_2(spawn_bot: SpawnBot) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bot = spawn_bot("--port", str(taken.getsockname()[1]), wait_ready=False)
        # It binds after its imports: the start-up's own bound (a loaded machine took over 30 s for them).
        assert bot.wait(READY_TIMEOUT) == 2
    assert "cannot listen on" in bot.stderr_tail()


async def test_sigterm_during_start_up_exits_0_without_announcing_ready(spawn_bot: SpawnBot) -> None:
    bot = spawn_bot(wait_ready=False)
    # Signal it as soon as it handles SIGTERM (its first act), long before it is ready: a fixed
    # sleep raced the interpreter's own start under load and killed it before it had a handler.
    wait_until_catching(bot.proc.pid, signal.SIGTERM)
    bot.proc.send_signal(signal.SIGTERM)
    # The signal is remembered and acts once its imports are done (bot.lifecycle), so the wait is
    # the start-up's own bound: a loaded machine took longer than 15 s over those imports.
    assert bot.wait(READY_TIMEOUT) == 0
    ended = bot.next_event("ended", 1)
    assert ended["reason"] == "signal"
    assert "ready" not in [e["event"] for e in bot.all_events]


async def test_the_offers_request_data_is_the_sessions_data_in_place_of_the_start_body(spawn_bot: SpawnBot) -> None:
    bot = spawn_bot("--connect-timeout", "30", env={"VOICEFLEET_BODY": json.dumps({"from_start": 1})})

    async def offer_with_request_data(offer: dict[str, object]) -> dict[str, object]:
        return await post_json(bot.offer_url, {**offer, "pc_id": None, "requestData": {"initial_prompt": "hi"}})

    async with WebRTCClient(bot.offer_url, signal=offer_with_request_data):
        assert bot.next_event("connected", 10)["body_keys"] == ["initial_prompt"]
