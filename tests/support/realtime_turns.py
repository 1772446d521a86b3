"""A converged bot's turns through voicefleet, against the OpenAI Realtime fake: a real dispatcher
(`BOT_FILE=examples/realtime/bot.py`) with a warm bot, the WebRTC caller of `voicefleet loadtest`,
and each turn's latency split into the fake model's own share and the rest; `pipecat_runner` runs the
same bot under Pipecat's own runner, the baseline without voicefleet.

A turn as the caller hears it runs from its last loud audio out to the first loud answer in. The
fake records, on the same monotonic clock, when the turn's last loud audio reached it and when the
answer's first audio left it: that span is the model's (its VAD's quiet wait plus its scripted
delay). What is left is the path: the caller's audio to the model through the bot, and back; the
difference between that rest through voicefleet and under Pipecat's runner is voicefleet's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.fakes.server import FakeServer
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import until, wait_until
from voicefleet.loadtest.audio import Pcm
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

REALTIME_BOT = Path(__file__).resolve().parents[2] / "examples" / "realtime" / "bot.py"
KEY = "sk-realtime-test-key"
WARM_TIMEOUT = 120.0  # a bot's first import of Pipecat on a busy machine: a safety net


class _Answered(Protocol):
    turns: list[tuple[float, float]]


class ScriptedModel(Protocol):
    """A vendor's fake (OpenAI Realtime, Gemini Live): its connections record each answered turn."""

    answer_seconds: float

    @property
    def connections(self) -> Sequence[_Answered]: ...


@dataclass(frozen=True)
class Turn:
    heard: float  # the caller's end of speech to the first loud answer, seconds
    model: float  # the fake's span: the turn's last audio in to the answer's first audio out

    @property
    def beyond_model(self) -> float:
        """The rest of the turn: WebRTC both ways, the bot (Pipecat and voicefleet's host), the caller."""
        return self.heard - self.model


@contextmanager
def realtime_fleet(log_dir: Path, fake: FakeOpenAIRealtime) -> Iterator[DispatcherProcess]:
    """The fake served, and a dispatcher holding one warm realtime bot pointed at it."""
    with FakeServer(fake.app()) as server:
        fake.url = server.url.replace("http://", "ws://")
        with warm_fleet(log_dir, realtime_env(fake.url)) as dispatcher:
            yield dispatcher


def realtime_env(url: str) -> dict[str, str]:
    """A dispatcher's environment for the converged example bot on OpenAI Realtime at `url` (ws://host:port)."""
    return {
        "BOT_FILE": str(REALTIME_BOT),
        "OPENAI_API_KEY": KEY,
        "OPENAI_REALTIME_URL": f"{url}/v1/realtime",
        "LOCAL_BOT_ENV": "OPENAI_API_KEY,OPENAI_REALTIME_URL",
    }


@contextmanager
def warm_fleet(log_dir: Path, env: dict[str, str]) -> Iterator[DispatcherProcess]:
    """A dispatcher holding one warm converged bot (`env` names it, its vendor and its endpoint)."""
    env = {"RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1", "VOICEFLEET_ICE_LOOPBACK": "1", **env}
    with run_dispatcher(log_dir, env) as dispatcher:
        wait_until(
            lambda: "connected (idle)" in dispatcher.log(),
            "a warm converged bot",
            timeout=WARM_TIMEOUT,
            detail=dispatcher.log,
        )
        yield dispatcher


async def call(base_url: str, fake: ScriptedModel, speech: Pcm, turns: int) -> list[Turn]:
    """One WebRTC call of `turns` turns; a turn the fake answered more or less than once is left out."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        answer = (await http.post("/start", json={})).raise_for_status().json()
        try:
            async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
                return await _turns(client, fake, speech, turns)
        finally:
            await http.delete(f"/sessions/{answer['session_id']}")


async def _turns(client: WebRTCClient, fake: ScriptedModel, speech: Pcm, turns: int) -> list[Turn]:
    measured = []
    for _ in range(turns):
        answered = sum(len(c.turns) for c in fake.connections)
        result = await client.talk(speech, listen_seconds=10, until_reply=True)
        await asyncio.sleep(fake.answer_seconds + 0.3)  # the answer plays out before the next turn
        conn = fake.connections[-1]
        if result.reply_latency is None or sum(len(c.turns) for c in fake.connections) != answered + 1:
            continue
        last_in, first_out = conn.turns[-1]
        measured.append(Turn(result.reply_latency, first_out - last_in))
    return measured


async def session_error(base_url: str, timeout: float = 10.0) -> dict[str, Any]:
    """Start a session, join it over WebRTC, and return the session once it has an `error`."""
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).json()
        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60):

            async def reported() -> dict[str, Any] | None:
                session = (await api.get(f"/sessions/{answer['session_id']}")).json()
                return session if session.get("error") else None

            found: dict[str, Any] = await until(reported, "the session's error", timeout=timeout, interval=0.1)
            return found


@contextmanager
def pipecat_runner(log_dir: Path, fake: FakeOpenAIRealtime) -> Iterator[str]:
    """The baseline: the same bot under Pipecat's own development runner (`python bot.py -t webrtc`), no
    voicefleet at all; yields its offer URL."""
    with FakeServer(fake.app()) as server:
        fake.url = server.url.replace("http://", "ws://")
        env = {"OPENAI_API_KEY": KEY, "OPENAI_REALTIME_URL": f"{fake.url}/v1/realtime"}
        with runner_process(log_dir, REALTIME_BOT, env) as offer:
            yield offer


@contextmanager
def runner_process(log_dir: Path, bot: Path, env: dict[str, str]) -> Iterator[str]:
    """`python bot.py -t webrtc` under Pipecat's own runner with `env` added to ours; yields its offer URL."""
    import os
    import subprocess
    import sys

    from tests.support.ports import free_port
    from tests.support.processes import terminate

    port = free_port()
    with open(log_dir / "runner.log", "wb") as log:
        process = subprocess.Popen([sys.executable, str(bot), "-t", "webrtc", "--host", "127.0.0.1",
                                    "--port", str(port)], env={**os.environ, **env}, stdout=log, stderr=log)
        try:
            def up() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).status_code < 500
                except httpx.TransportError:
                    return False

            wait_until(up, "Pipecat's runner", timeout=WARM_TIMEOUT)
            yield f"http://127.0.0.1:{port}/api/offer"
        finally:
            terminate(process, grace=10)


async def direct_call(offer: str, fake: FakeOpenAIRealtime, speech: Pcm, turns: int) -> list[Turn]:
    """`call`'s turns against Pipecat's runner: the same caller, bot and fake, no dispatcher."""
    async with WebRTCClient(offer, connect_timeout=60) as client:
        return await _turns(client, fake, speech, turns)
