"""The bot host's reports of its services' use during the call (bot/usage_reports.py), against the
dispatcher's own handler of them (dispatcher/usage/so_far.py) in place of the channel between: the
whole sums so far, sent again only when they changed, at the pace the dispatcher answers; a refusal
is tried again; a dispatcher that does not know the method (404) is asked no more."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bot import usage_reports
from bot.usage_reports import report_usage
from botchannel.contract import RequestFailed
from botchannel.usage import METHOD_USAGE_SO_FAR
from dispatcher.store.usage_so_far import MemorySoFar
from dispatcher.usage.so_far import UsageSoFar

LLM = {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini", "prompt_tokens": 100}


class Link:
    session_id = "s-1"


class Dispatcher:
    """What a bot's request reaches: the dispatcher's handler, as the channel calls it."""

    def __init__(self, every: float) -> None:
        self.kept = MemorySoFar()
        self.noted: list[str] = []
        self.handler = UsageSoFar(self.kept, every, lambda session_id, event: self.noted.append(event))
        self.asked = 0

    async def request(self, method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        assert method == METHOD_USAGE_SO_FAR
        answer = await self.handler._reported(Link(), params)  # type: ignore[arg-type]
        self.asked += 1  # answered: what it sent is kept
        return answer


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):  # a busy machine's pace, not a fixed sleep
        while not check():
            await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_reports, "FIRST_SECONDS", 0.05)
    monkeypatch.setattr(usage_reports, "MIN_EVERY_SECONDS", 0.05)


async def test_the_whole_sums_are_sent_when_they_change_and_the_newest_kept() -> None:
    dispatcher = Dispatcher(every=1.1)  # the handler takes one a second at most
    rows: list[dict[str, Any]] = []
    task = asyncio.create_task(report_usage(dispatcher.request, lambda: [dict(r) for r in rows]))
    try:
        await asyncio.sleep(0.3)
        assert dispatcher.asked == 0  # nothing used yet: nothing sent
        rows.append(dict(LLM))
        await until(lambda: dispatcher.asked == 1)
        assert await dispatcher.kept.get("s-1") == (LLM,)
        await asyncio.sleep(2.5)  # two turns of the dispatcher's pace
        assert dispatcher.asked == 1  # unchanged: not sent again
        rows[0]["prompt_tokens"] = 250
        await until(lambda: dispatcher.asked == 2)
        assert await dispatcher.kept.get("s-1") == ({**LLM, "prompt_tokens": 250},)  # replaced, never added
        assert dispatcher.noted == ["usage_reported"]  # said once in the timeline
    finally:
        task.cancel()


async def test_a_report_the_dispatcher_refuses_is_tried_again() -> None:
    dispatcher = Dispatcher(every=1.0)
    await dispatcher.handler._reported(Link(), {"usage": [LLM]})  # type: ignore[arg-type]
    with pytest.raises(RequestFailed) as too_soon:  # a looping bot: one a second
        await dispatcher.handler._reported(Link(), {"usage": [LLM]})  # type: ignore[arg-type]
    assert too_soon.value.status == 429
    with pytest.raises(RequestFailed) as bad:
        await dispatcher.handler._reported(Link(), {"usage": [{**LLM, "prompt_tokens": -1}]})  # type: ignore[arg-type]
    assert bad.value.status == 400
    sent = Dispatcher(every=0.05)
    calls = 0

    async def flaky(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RequestFailed(503, "channel_unavailable", "the channel to the dispatcher is not open")
        return await sent.request(method, params, timeout)

    task = asyncio.create_task(report_usage(flaky, lambda: [dict(LLM)]))
    try:
        await until(lambda: sent.asked == 1)
        assert calls == 2 and await sent.kept.get("s-1") == (LLM,)
    finally:
        task.cancel()


async def test_an_older_dispatcher_is_asked_no_more() -> None:
    asked = 0

    async def older(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        nonlocal asked
        asked += 1
        raise RequestFailed(404, "unknown_method", f"the dispatcher has no method {method!r}")

    async with asyncio.timeout(5):
        await report_usage(older, lambda: [dict(LLM)])  # returns: nothing more to do
    assert asked == 1
