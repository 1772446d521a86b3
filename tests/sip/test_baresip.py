"""A softphone a person would use, Debian's baresip, calls the edge's number on loopback: it speaks
a WAV, the parrot says the words back, and what baresip heard is scored as SIPp's echo is
(tests/sip/test_calls.py). The WAV's end makes baresip hang up, with its own BYE."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.phone.conftest import speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_parrot_websocket import voiced
from tests.sip.baresip_agent import run_baresip
from tests.sip.conftest import NUMBER, EdgeProcess
from tests.support.audio import BOT_AUDIO_RMS, Pcm, echo_similarity, read_wav, rms
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, baresip, a bot process importing Pipecat and Silero

RATE = 8000
# The parrot greets first and answers a turn only once its greeting is done (as call_echo.xml waits
# 2.5 s); after the words, silence long enough for the whole echo to come back before the hang-up.
LEAD_SECONDS, TAIL_SECONDS = 3.0, 10.0
CALL_SECONDS = 60.0  # the whole call, the bot's claim included, on a loaded machine


def write_caller_wav(path: Path) -> Pcm:
    """The caller's voice as aufile plays it (16-bit mono at the codec's 8 kHz); the words it holds."""
    speech = np.frombuffer(speech_8k(), dtype=np.int16)
    samples = np.concatenate([np.zeros(int(LEAD_SECONDS * RATE), np.int16), speech,
                              np.zeros(int(TAIL_SECONDS * RATE), np.int16)])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return Pcm(speech, RATE)


async def test_baresip_calls_the_edge_and_hears_its_words_back(
    parrot_dispatcher: DispatcherProcess, edge: EdgeProcess, tmp_path: Path,
) -> None:
    speech = write_caller_wav(tmp_path / "caller.wav")
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        with run_baresip(tmp_path, tmp_path / "caller.wav") as phone:
            dialled = phone.command("dial", f"sip:{NUMBER}@127.0.0.1:{edge.sip_port}")
            assert dialled["ok"], dialled
            answered = phone.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=CALL_SECONDS)
            assert answered["type"] == "CALL_ESTABLISHED", f"{answered}\n{edge.log()}"
            closed = phone.wait_event("CALL_CLOSED", timeout=CALL_SECONDS)  # the WAV ended: baresip's BYE
            assert "end of file" in closed.get("param", ""), f"{closed}\n{edge.log()}"
        assert phone.process.returncode == 0, phone.log()  # it quit when told
        # The caller's BYE ended the session and stopped its bot.
        assert await wait_active_sessions(api, 0) == 0

    [recording] = phone.recordings("dec")
    heard = read_wav(recording)
    assert heard.sample_rate == RATE
    assert rms(heard.samples[: int(LEAD_SECONDS * RATE)]) > BOT_AUDIO_RMS  # the greeting, before the caller spoke
    similarity = echo_similarity(voiced(speech), heard.samples, RATE)
    assert similarity > 0.6, f"the caller's words came back at {similarity:.2f}\n{edge.log()}\n{phone.log()}"
