"""A canary 1 s slower at every turn, with real processes: a dispatcher with two releases of real bot
files — the parrot, and the same parrot answering each turn 1 s later (tests/bots/slow_reply_parrot.py)
— and callers on WebRTC who speak and hear the echo, recording off. The turns the bot hosts observe
(bot/conversation.py) travel with each session's `ended` report to its timeline, where the release
judge reads the canary's turn latency at least 1 s; its first audio (the greeting) is not delayed.

What the judge then does with a sample of such sessions (the canary set to 0 at its sample, with a
reason naming its turn latency; the stable release untouched) is checked on the real watch, rule and
traffic in tests/releases/test_canary_signals_judged.py; the rule's sweep (11 sessions each the
fewest that judge it, margins) in tests/dispatcher/releases/test_conversation_health.py; an automatic
rollback end to end, through real bots and the admin API's history, in
tests/releases/test_automatic_rollback.py."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.releases.drawn_calls import KEY_RELEASES, good_outcome, one_call_to_each_release
from tests.support.processes import run_dispatcher
from tests.support.releases import WAIT, rollback_env, session_over, stay_past_short_session
from tests.support.speech_pauses import first_phrase
from tests.support.waiting import within
from tests.support.webrtc_client import WebRTCClient
from voicefleet.loadtest.audio import reply_heard

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # two real calls, each a bot process importing Pipecat

ROOT = Path(__file__).resolve().parents[2]
PARROT, SLOW_PARROT = ROOT / "examples" / "parrot" / "bot.py", ROOT / "tests" / "bots" / "slow_reply_parrot.py"
REPLY_DELAY_SECONDS = 1.0  # slow_reply_parrot.py's (not imported here: it patches the parrot as it loads)
# One call to each release, at once (each caller sends real-time audio from this process): the
# comparison of samples is the judge's (above); here, each bot host's figures.


def _greeting_over(client: WebRTCClient) -> bool:
    """The bot's greeting (a short tone) heard since the caller connected, and quiet for a second since."""
    recording = client.recording
    return bool(reply_heard(recording.times, recording.levels, client.connected_at, time.monotonic()))


async def test_a_slow_parrots_turns_reach_the_judge_1_s_later_as_its_bot_host_timed_them(tmp_path: Path) -> None:
    env = {**rollback_env(PARROT, SLOW_PARROT), **KEY_RELEASES, "BOT_CONNECT_TIMEOUT_SECONDS": str(int(WAIT))}
    heard: dict[str, float | None] = {}
    phrase = first_phrase()  # one turn is what is compared: the parrot echoes it whole, so the shorter the quicker
    with run_dispatcher(tmp_path, env) as dispatcher:

        async def call(api: httpx.AsyncClient, session_id: str) -> None:
            """A caller who says one phrase, hears the echo, and hangs up."""
            async with WebRTCClient(f"{api.base_url}/sessions/{session_id}/api/offer", connect_timeout=WAIT,
                                    headers={"Authorization": api.headers["Authorization"]}) as client:
                # Spoken over a greeting that comes late (a loaded machine's), the turn would be
                # the bot's to hear mid-greeting, and the greeting's tail would pass for the echo.
                assert await within(lambda: _greeting_over(client), WAIT), f"no greeting heard in {session_id}"
                result = await client.talk(phrase, listen_seconds=30.0, until_reply=True)  # the echo played whole
                heard[session_id] = result.reply_latency
                await stay_past_short_session(client)
            await session_over(api, session_id)

        judged = await one_call_to_each_release(dispatcher.base_url, WAIT, call)
        log = dispatcher.log()
    for session in judged:
        # (What a caller on this machine measures swings by seconds with its load; the bot hosts' figures
        # are what the judge compares, so the timing asserted is theirs.)
        said = (session, heard, log[-3000:])
        assert heard[session.session_id] is not None, f"no echo heard: {said}"
        talk = good_outcome(session, said).talk
        assert talk is not None and talk.turn_latency is not None, f"no turn figures on the timeline: {said}"
        assert not (talk.unanswered or talk.left_early), said  # the turn answered, played whole
        if session.release == "next":
            assert talk.turn_latency >= REPLY_DELAY_SECONDS, said  # 1 s more at every turn, as its host timed it
