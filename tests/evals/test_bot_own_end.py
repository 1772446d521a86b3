"""A bot that blocked its own host's event loop, or closed its own connection, fails its turn with that
reason, however busy its machine was and whether or not its caller saw the end; a host starved of CPU,
or a connection lost through no fault of the bot's, stays inconclusive. The host's report (the
session's `ended` event, its conversation's `blocked` figures) → the turn's reason → the verdict."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from voicefleet.evals.bot_blocked import blame_blocks
from voicefleet.evals.call_end import CallEnd, end_of, ended_reason, went_quiet
from voicefleet.evals.outcome import Block, CallResult, Stall, Target, TurnResult
from voicefleet.evals.verdict import Rules

BASE = "http://dispatcher.test"
HEARD_NOTHING = "expected an answer, heard nothing"
LOST = ("ICE consent expired: the caller answered none of its consent checks for 31 s (a machine too busy to "
        "answer them, the caller's or this one)")


def blocked_end(seconds: float = 31.2) -> dict[str, Any]:
    return {"reason": "bot_blocked", "exit_code": 0, "detail": f"the bot's own code blocked its event loop for "
            f"{seconds:.0f} s, so its ICE consent checks went unanswered ({LOST})",
            "conversation": {"blocked": [[1_000_012.0, seconds, seconds - 0.3]]}}


def test_a_consent_expiry_the_bots_block_made_is_the_bots_failure_seen_or_not() -> None:
    for hung_up in (True, False):
        assert end_of(2, blocked_end(), hung_up=hung_up) == CallEnd(
            "the bot blocked its event loop for 31 s at turn 2")


def test_a_bots_own_close_is_its_failure_whether_or_not_the_caller_saw_it() -> None:
    for hung_up in (True, False):
        assert end_of(2, {"reason": "bot_closed", "exit_code": 0}, hung_up=hung_up) == CallEnd(
            "the bot closed its connection at turn 2")


def two_turns(first: list[str], *, stalls: list[Stall] | None = None, blocks: list[Block] | None = None,
              lost_at: int | None = None) -> CallResult:
    return CallResult("book", "book.toml", session_id="s1", lost_at=lost_at, bot_stalls=stalls, bot_blocks=blocks,
                      turns=[TurnResult("hello", "", None, first, began_at=1_000_000.0),
                             TurnResult("seven", "", None, ["not taken: the call had ended"] if lost_at else [],
                                        began_at=1_000_040.0)])


# The bot's host fell 31 s behind in turn 1, waiting for a CPU through most of it: a busy machine's mark.
BUSY = [Stall(1_000_012.0 + n, 1.0, 0.9) for n in range(31)]


def test_a_turn_that_heard_nothing_while_the_bot_blocked_its_loop_fails_naming_the_block() -> None:
    rules = Rules()
    starved = two_turns([HEARD_NOTHING], stalls=BUSY)
    assert rules.outcome(starved) == "inconclusive"  # the machine alone: nothing proven
    blocked = two_turns([HEARD_NOTHING], stalls=BUSY, blocks=[Block(1_000_012.0, 31.2, 30.9)])
    blame_blocks(blocked)
    assert blocked.turns[0].problems == ["the bot blocked its event loop for 31 s at turn 1", HEARD_NOTHING]
    assert rules.outcome(blocked) == "failed"
    assert blocked.first_failure() == "turn 1 ('hello'): the bot blocked its event loop for 31 s at turn 1"


def test_a_block_in_a_turn_that_passed_fails_nothing() -> None:
    passed = two_turns([], blocks=[Block(1_000_012.0, 1.5, 1.4)])
    blame_blocks(passed)
    assert passed.passed and Rules().outcome(passed) == "passed"


def test_an_end_the_bot_made_itself_is_failed_where_a_lost_connection_is_inconclusive() -> None:
    rules = Rules()
    lost = f"the call's connection was lost at turn 1, as the bot's host saw it: {LOST}"
    assert rules.outcome(two_turns([lost, HEARD_NOTHING], stalls=BUSY, lost_at=1)) == "inconclusive"
    for own in (end_of(1, blocked_end(), hung_up=False), end_of(1, {"reason": "bot_closed"}, hung_up=False)):
        assert not own.lost
        # however busy its machine, and with the bot's own transcript not the caller's words
        call = two_turns([own.reason, HEARD_NOTHING], stalls=BUSY)
        call.turns[0].bot_heard = "hell"
        assert rules.outcome(call) == "failed", own


def session_record(ended_after: float, ended: dict[str, Any]) -> httpx.AsyncClient:
    """The dispatcher's answers for one session (docs/http-api.md): up until `ended_after` seconds, then
    ended with its host's report on its timeline."""
    over_at = asyncio.get_running_loop().time() + ended_after

    def answer(request: httpx.Request) -> httpx.Response:
        over = asyncio.get_running_loop().time() >= over_at
        if request.url.path == "/sessions/s1":
            return httpx.Response(200, json={"session_id": "s1", "status": "ended" if over else "joined"})
        if request.url.path == "/sessions/s1/timeline":
            events = [{"event": "joined", "at": 1.0}, *([{"event": "ended", "at": 31.0, **ended}] if over else [])]
            return httpx.Response(200, content=json.dumps({"session_id": "s1", "events": events}))
        return httpx.Response(404, json={"error": {"code": "not_found"}})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def test_a_turn_that_heard_nothing_over_a_quiet_connection_waits_for_its_hosts_end() -> None:
    """The caller's connection went quiet; the host tells the connection lost a while later (30 s of
    consent in life; a second here): the turn reads as lost, not as a bot that did not answer."""
    async def read(ended: dict[str, Any], *, quiet: bool) -> CallEnd | None:
        async with session_record(1.0, ended) as http:
            return await ended_reason(Target(BASE, None, None), http, "s1", 1, hung_up=False,
                                      caller_end=asyncio.Event(), quiet=lambda: quiet)

    connection_lost = {"reason": "connection_lost", "detail": LOST, "exit_code": 0}
    assert asyncio.run(read(connection_lost, quiet=True)) == CallEnd(
        f"the call's connection was lost at turn 1, as the bot's host saw it: {LOST}", lost=True)
    assert asyncio.run(read(blocked_end(), quiet=True)) == CallEnd("the bot blocked its event loop for 31 s at turn 1")
    # audio still coming: a bot that did not answer, judged at once
    assert asyncio.run(read(connection_lost, quiet=False)) is None


def test_a_connection_is_quiet_once_no_audio_came_for_a_while() -> None:
    assert went_quiet([10.0, 10.02], since=5.0, now=12.5)
    assert not went_quiet([10.0, 12.4], since=5.0, now=12.5)
    assert not went_quiet([], since=12.0, now=12.5)  # the turn only began
