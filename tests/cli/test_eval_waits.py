"""The eval caller's waits end on what they wait for: the runner's next call starts once a call is over
(not once it is judged), an answer ends when the bot's events say so (not on a poll's tick), and a
hang-up is seen when the connection's state changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, SupportsIndex

import httpx
import pytest

from voicefleet.evals import call, run
from voicefleet.evals.outcome import CallResult, Target
from voicefleet.evals.phases import Phases
from voicefleet.evals.scenario import Scenario, Turn
from voicefleet.loadtest.webrtc import WebRTCClient

ANSWER = ["bot-llm-started", "bot-llm-stopped", "bot-tts-started", "bot-started-speaking", "bot-tts-stopped"]


def scenario(name: str) -> Scenario:
    return Scenario(name=name, turns=[Turn(say="hello")])


async def test_the_next_call_starts_while_a_finished_call_is_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    """At --concurrency 1 the second call starts once the first's caller has hung up, while the first is
    still being judged (and its session stopped); never while the first is still talking."""
    first_talking, second_started = True, asyncio.Event()

    async def placed(target: Target, scene: Scenario, http: httpx.AsyncClient, run_id: str,
                     talked: Callable[[], None] = lambda: None) -> CallResult:
        nonlocal first_talking
        if scene.name == "second":
            assert not first_talking, "the second call started while the first was still talking"
            second_started.set()
            return CallResult(scene.name, "")
        first_talking = False
        talked()
        await asyncio.wait_for(second_started.wait(), 10)  # the judging: the next call runs meanwhile
        return CallResult(scene.name, "")

    monkeypatch.setattr(run, "run_call", placed)
    results = await run.run_suite("http://127.0.0.1:9", None, None, [scenario("first"), scenario("second")],
                                  repeat=1, concurrency=1, progress=False, run_id="r")
    assert [r.scenario for r in results] == ["first", "second"]


class CountedReads(list[dict[str, Any]]):
    """The RTVI messages, counting how often the caller reads them."""

    reads = 0

    def __getitem__(self, index: SupportsIndex | slice) -> Any:  # type: ignore[override]
        self.reads += 1
        return super().__getitem__(index)


async def test_an_answer_is_read_when_the_bots_events_arrive_not_on_a_poll() -> None:
    """A 1.5 s answer of six events: the caller looks at the messages once per event and once when the quiet
    is over, and twice for the words; a 50 ms poll looked 35 times (at least 13 at any load that
    lets a poll come round in 130 ms)."""
    client = WebRTCClient("http://127.0.0.1:9/api/offer")
    messages = client.rtvi_messages = CountedReads()

    async def bot() -> None:
        for kind in [*ANSWER, "bot-stopped-speaking"]:
            await asyncio.sleep(0.25)
            client.rtvi_messages.append({"label": "rtvi-ai", "type": kind})
            await client._notify_rtvi()

    speaking = asyncio.create_task(bot())
    try:
        answer = await call._hear(client, since=0, listen=10.0, phases=Phases())
    finally:
        await speaking
        await client.close()
    assert answer.text == ""
    assert messages.reads <= len(ANSWER) + 1 + 5, f"read {messages.reads} times"


async def test_a_hang_up_is_seen_when_the_connection_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    client = WebRTCClient("http://127.0.0.1:9/api/offer")
    monkeypatch.setattr(call, "HANG_UP_WAIT", 0.2)
    assert await call._bot_hung_up(client) is False  # still "new": no hang-up within the wait

    monkeypatch.setattr(call, "HANG_UP_WAIT", 10.0)
    closing = asyncio.get_running_loop().call_later(0.2, lambda: asyncio.ensure_future(client.pc.close()))
    began = asyncio.get_running_loop().time()
    assert await call._bot_hung_up(client) is True
    assert asyncio.get_running_loop().time() - began < 5.0
    closing.cancel()
    await client.close()
    assert client.pc.listeners("connectionstatechange") == []  # the caller's own listener is taken off again
