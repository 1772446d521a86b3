"""A call that ended under a turn says who ended it and why, from what the caller saw and the session
recorded: a bot that ended it fails with its host's reason; a connection lost between them (ICE
consent checks a busy machine did not answer in time) is inconclusive, never the bot's failure."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from voicefleet.evals.call_end import CallEnd, end_of, ended_reason
from voicefleet.evals.outcome import CallResult, Target, TurnResult
from voicefleet.evals.report import summary
from voicefleet.evals.verdict import Rules

BASE = "http://dispatcher.test"
LOST_BY_THE_BOT = ("ICE consent expired: the caller answered none of its consent checks for 31 s (a machine too "
                   "busy to answer them, the caller's or this one)")


@pytest.mark.parametrize(("ended", "reason"), [
    ({"reason": "pipeline_finished", "exit_code": 0}, "the bot ended the call at turn 1 (its pipeline ended)"),
    ({"reason": "peer_disconnected", "exit_code": 0}, "the bot ended the call at turn 1 (it closed the connection)"),
    ({"reason": "idle_timeout", "exit_code": 0}, "the bot ended the call at turn 1 (its pipeline's idle timeout)"),
    ({"reason": "signal", "detail": "SIGTERM", "exit_code": 0},
     "the bot ended the call at turn 1 (its host was told to stop: SIGTERM)"),
    ({"reason": "something_new", "exit_code": 0}, "the bot ended the call at turn 1 (its host's end: something_new)"),
    (None, "the bot ended the call at turn 1"),  # a bot host that reported no end: the caller's word alone
])
def test_an_end_the_bot_made_names_its_hosts_reason_and_is_the_bots(ended: dict[str, Any] | None,
                                                                       reason: str) -> None:
    assert end_of(1, ended, hung_up=True) == CallEnd(reason, lost=False)


def test_a_connection_the_bots_host_lost_to_consent_is_lost_not_ended() -> None:
    ended = {"reason": "connection_lost", "detail": LOST_BY_THE_BOT, "exit_code": 0}
    lost = CallEnd(f"the call's connection was lost at turn 1, as the bot's host saw it: {LOST_BY_THE_BOT}", lost=True)
    assert end_of(1, ended, hung_up=True) == lost
    assert end_of(1, ended, hung_up=False) == lost


def test_a_peer_the_bots_host_saw_go_while_the_caller_was_up_is_a_connection_lost() -> None:
    """A bot's own close reaches its caller; an older bot host whose consent checks gave up on a busy
    caller closes its side alone, and reports its peer gone."""
    assert end_of(1, {"reason": "peer_disconnected", "exit_code": 0}, hung_up=False) == CallEnd(
        "the call's connection was lost at turn 1: the bot's host saw the caller go while the caller's connection "
        "was up", lost=True)


def session_record(session: dict[str, Any], ended: dict[str, Any] | None) -> httpx.AsyncClient:
    """The dispatcher's answers for one session (docs/http-api.md): `GET /sessions/{id}` and its timeline."""
    events = [{"event": "joined", "at": 1.0}, *([{"event": "ended", "at": 31.0, **ended}] if ended else [])]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/sessions/s1":
            return httpx.Response(200, json={"session_id": "s1", **session})
        if request.url.path == "/sessions/s1/timeline":
            return httpx.Response(200, content=json.dumps({"session_id": "s1", "events": events}))
        return httpx.Response(404, json={"error": {"code": "not_found"}})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def reason_for(session: dict[str, Any], ended: dict[str, Any] | None, *, hung_up: bool = True) -> CallEnd | None:
    async def read() -> CallEnd | None:
        async with session_record(session, ended) as http:
            return await ended_reason(Target(BASE, None, None), http, "s1", 1, hung_up=hung_up)
    return asyncio.run(read())


def test_the_session_record_says_whose_end_it_was() -> None:
    assert reason_for({"status": "ended"}, {"reason": "pipeline_finished", "exit_code": 0}) == CallEnd(
        "the bot ended the call at turn 1 (its pipeline ended)")
    assert reason_for({"status": "ended"}, {"reason": "connection_lost", "detail": LOST_BY_THE_BOT}) == CallEnd(
        f"the call's connection was lost at turn 1, as the bot's host saw it: {LOST_BY_THE_BOT}", lost=True)
    crashed = {"status": "failed", "detail": "exit code 4: bot.py:87: bot() raised RuntimeError: down"}
    assert reason_for(crashed, {"reason": "bot_failed", "exit_code": 4}) == CallEnd(
        "the bot's session failed: exit code 4: bot.py:87: bot() raised RuntimeError: down")


def test_a_bots_close_the_caller_sees_after_its_host_reported_it_is_the_bots_end() -> None:
    """A busy caller reads the bot's close late: its host's report came first, then the close."""
    async def read() -> CallEnd | None:
        caller_end = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, caller_end.set)
        async with session_record({"status": "ended"}, {"reason": "peer_disconnected", "exit_code": 0}) as http:
            return await ended_reason(Target(BASE, None, None), http, "s1", 1, hung_up=False, caller_end=caller_end)
    assert asyncio.run(read()) == CallEnd("the bot ended the call at turn 1 (it closed the connection)")


def test_a_session_still_up_while_the_caller_saw_no_end_is_no_end() -> None:
    """The turn failed on its own: its bot neither ended the call nor lost it."""
    assert reason_for({"status": "joined"}, None, hung_up=False) is None
    assert reason_for({"status": "ended"}, {"reason": "peer_disconnected", "exit_code": 0}, hung_up=False) == CallEnd(
        "the call's connection was lost at turn 1: the bot's host saw the caller go while the caller's connection "
        "was up", lost=True)


def call_lost_at(turn: int, *, failing_before: bool = False, greeting: str = "") -> CallResult:
    lost = f"the call's connection was lost at turn {turn}, as the bot's host saw it: {LOST_BY_THE_BOT}"
    turns = [TurnResult(f"turn {n}", "", None if n >= turn else 900.0,
                        [lost, "expected an answer, heard nothing"] if n == turn else
                        ["not taken: the call had ended"] if n > turn else
                        ["expected 'seven', heard 'six'"] if failing_before else [])
             for n in (1, 2, 3)]
    return CallResult("book", "book.toml", session_id="s1", turns=turns, lost_at=turn,
                      problems=[f"greeting: {greeting}"] if greeting else [])


def test_a_call_whose_connection_was_lost_is_inconclusive_with_that_reason() -> None:
    rules = Rules()
    lost = call_lost_at(1)
    assert rules.outcome(lost) == "inconclusive"
    assert rules.reason(lost) == lost.turns[0].problems[0]
    assert lost.turns[0].problems[0].startswith("the call's connection was lost at turn 1, as the bot's host saw it")
    assert summary([lost], rules)["scenarios"][0]["inconclusive"][0]["reason"] == rules.reason(lost)


@pytest.mark.parametrize("lost", [
    call_lost_at(2, failing_before=True),  # turn 1 failed on its own before the connection went
    call_lost_at(1, greeting="expected 'booking line', heard nothing"),
])
def test_a_call_that_failed_before_its_connection_was_lost_still_fails(lost: CallResult) -> None:
    assert Rules().outcome(lost) == "failed"


def test_a_call_the_bot_ended_still_fails() -> None:
    ended = call_lost_at(1)
    ended.lost_at = None
    ended.turns[0].problems[0] = "the bot ended the call at turn 1 (its pipeline ended)"
    assert Rules().outcome(ended) == "failed"
