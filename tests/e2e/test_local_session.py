"""A local voice session end to end: dispatcher → real bot process → WebRTC → real speech → reply."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.conftest import SPEECH
from tests.support.audio import rms
from tests.support.http_client import api_client
from tests.support.processes import children_of, pid_alive, wait_gone
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # the real bot, real WebRTC and real speech: tens of seconds


async def test_a_spoken_utterance_gets_an_audible_reply_and_delete_ends_the_bot(dispatcher):
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        started = await api.post("/start", json={"body": {"test": "e2e"}})
        assert started.status_code == 201, started.text
        session = started.json()
        bots = children_of(dispatcher.process.pid)
        assert len(bots) == 1

        # The offer goes through the dispatcher's proxy, before the bot is even ready.
        async with WebRTCClient(dispatcher.base_url + session["offer_url"]) as client:
            # The bot reports its peer on stdout, which the dispatcher reads: shortly after ours.
            assert await status_becomes(api, session["session_id"], "joined")
            # Bounded by listening, not timed: reply latency is measured in bench/local_session.py.
            result = await client.talk(SPEECH, listen_seconds=30.0, until_reply=True)

        assert result.replied, result.summary()
        assert rms(result.reply_audio) > 500, result.summary()  # audible, not comfort noise

        deleted = await api.delete(f"/sessions/{session['session_id']}")
        assert deleted.status_code == 204  # answered once the bot has exited (SIGTERM, then SIGKILL)
        assert wait_gone(bots, timeout=30) == []
        assert not any(pid_alive(pid) for pid in bots)
        final = (await api.get(f"/sessions/{session['session_id']}")).json()
        assert final["status"] == "ended"


async def status_becomes(api: httpx.AsyncClient, session_id: str, status: str, polls: int = 300) -> bool:
    for _ in range(polls):
        if (await api.get(f"/sessions/{session_id}")).json()["status"] == status:
            return True
        await asyncio.sleep(0.05)
    return False
