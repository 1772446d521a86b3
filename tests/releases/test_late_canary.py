"""A canary that answers 3 s late, with real processes: a dispatcher with two releases of real bot
files — the greeter, and the same greeter greeting 3 s after the caller connects
(tests/bots/late_greeter.py) — and callers on WebRTC who stay on the line past the greeting. Each
bot's own `joined` and `first_audio` reports reach its session's timeline, and the release judge
reads the canary's first audio from it 3 s later than the stable's greeting comes.

What the judge then does with a sample of such sessions (the canary set to 0 at its sample, with a
reason naming its median first audio; the stable release untouched) is checked on the real watch,
rule and traffic in tests/releases/test_canary_signals_judged.py; the rule's sweep over samples and
spreads in tests/dispatcher/releases/test_health.py; an automatic rollback end to end, through real
bots and the admin API's history, in tests/releases/test_automatic_rollback.py."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.releases.drawn_calls import KEY_RELEASES, good_outcome, one_call_to_each_release
from tests.support.processes import run_dispatcher
from tests.support.releases import WAIT, rollback_env, session_over, stay_past_short_session
from tests.support.waiting import within
from tests.support.webrtc_client import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # two real calls, each a bot process importing Pipecat

BOTS = Path(__file__).resolve().parents[1] / "bots"
LATE_SECONDS = 3.0  # tests/bots/late_greeter.py's
# One call to each release, at once: the comparison of samples is the judge's (above); here, each bot's reports.


async def test_a_late_greeters_first_audio_reaches_the_judge_3_s_after_its_caller_joined(tmp_path: Path) -> None:
    env = {**rollback_env(BOTS / "greeter.py", BOTS / "late_greeter.py"), **KEY_RELEASES,
           "BOT_CONNECT_TIMEOUT_SECONDS": str(int(WAIT))}
    heard: dict[str, float | None] = {}
    with run_dispatcher(tmp_path, env) as dispatcher:

        async def call(api: httpx.AsyncClient, session_id: str) -> None:
            """A caller who connects, stays until it hears the greeting and past a short session, and hangs up."""
            async with WebRTCClient(f"{api.base_url}/sessions/{session_id}/api/offer", connect_timeout=WAIT,
                                    headers={"Authorization": api.headers["Authorization"]}) as client:
                heard[session_id] = await within(lambda: client.result().connect_to_first_audio, WAIT)
                await stay_past_short_session(client)
            await session_over(api, session_id)

        judged = await one_call_to_each_release(dispatcher.base_url, WAIT, call)
        log = dispatcher.log()
    for session in judged:
        said = (session, heard, log[-3000:])
        assert heard[session.session_id] is not None, f"no greeting heard: {said}"
        first_audio = good_outcome(session, said).first_audio_seconds
        if session.release == "next":  # 3 s late, as its bot reported it and as its caller heard it
            assert (first_audio or 0.0) >= LATE_SECONDS - 0.5, said
            assert (heard[session.session_id] or 0.0) >= LATE_SECONDS - 0.5, said
