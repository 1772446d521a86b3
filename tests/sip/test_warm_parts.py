"""A warm transfer's checks at the edge, without a call: which people a trunk can call warm, what its control
API takes, how the person's answer is named, how long the briefing's end is waited for before the bridge; and
the bot's line for each step (bot/transfer.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from bot.transfer import DEFAULT_BRIEFING, DEFAULT_FAILED, WarmStep, on_warm_transfer, warm_line
from bot.warm_steps import warm_handler
from botchannel.contract import RequestFailed
from botchannel.transfer import SUMMARY_CHARS
from sipedge.call_transfer import NotHanded
from sipedge.config import Trunk
from sipedge.control import TransferAsked
from sipedge.media_port import FRAME_BYTES
from sipedge.playout import Playout
from sipedge.sip_call import SipCall
from sipedge.warm_transfer import _played_out, unanswered_code, warm_number

TRUNK = Trunk("carrier", (), {}, termination_uri="sip:sip.carrier.example.com:5060", destinations=("+1*",))


def test_a_number_or_a_uri_at_the_trunks_host_is_called_warm_through_the_trunk() -> None:
    assert warm_number(TRUNK, "+14155550123") == "+14155550123"
    assert warm_number(TRUNK, "sip:+14155550123@sip.carrier.example.com") == "+14155550123"


@pytest.mark.parametrize(("trunk", "to", "code"), [
    (Trunk("bare", (), {}), "+14155550123", "warm_no_route"),  # no termination_uri: nothing to call through
    (TRUNK, "sip:desk@pbx.example.com", "warm_no_route"),  # another host: only a cold transfer (REFER) goes there
    (TRUNK, "+4420790000", "target_not_routed"),  # not among the trunk's destinations
    (TRUNK, "sip:+4420790000@sip.carrier.example.com", "target_not_routed"),
])
def test_a_person_the_trunk_cannot_call_is_refused_naming_why(trunk: Trunk, to: str, code: str) -> None:
    with pytest.raises(NotHanded) as refused:
        warm_number(trunk, to)
    assert (refused.value.status, refused.value.code) == (409, code)
    if code == "warm_no_route":
        assert "cold transfer" in refused.value.message


def test_the_persons_answer_is_named_busy_declined_or_unanswered() -> None:
    assert [unanswered_code(s) for s in (486, 600, 603, 487, 480, 408, 500)] == [
        "person_busy", "person_busy", "person_declined", "person_unanswered", "person_unanswered",
        "person_unanswered", "person_unanswered"]


def test_the_control_api_takes_a_warm_mode_and_a_short_summary_without_control_characters() -> None:
    asked = TransferAsked.model_validate({"to": "+14155550123", "request_id": "r1", "mode": "warm",
                                          "summary": "Ana, order 1042.\nWants a refund."})
    assert (asked.mode, asked.summary) == ("warm", "Ana, order 1042.\nWants a refund.")
    assert TransferAsked.model_validate({"to": "+14155550123", "request_id": "r1"}).mode == "cold"
    assert TransferAsked.model_validate({"to": "+14155550123", "request_id": "r1", "mode": "warm",
                                         "summary": "x" * SUMMARY_CHARS}).summary
    for wrong in ({"mode": "blind"}, {"mode": "warm", "summary": "x" * (SUMMARY_CHARS + 1)},
                  {"mode": "warm", "summary": ""},
                  {"mode": "warm", "summary": "a\x1b[2Jb"}):
        with pytest.raises(ValidationError):
            TransferAsked.model_validate({"to": "+14155550123", "request_id": "r1", **wrong})


def briefing_queued(seconds: float) -> tuple[Any, Any, Playout]:
    """A caller's call (its Playout holding `seconds` of the bot's briefing) and the person's leg, as
    `_played_out` reads them: stand-ins for PJSUA's call, which needs a SIP dialog."""
    playout = Playout()
    playout.add(bytes(FRAME_BYTES * round(seconds / 0.02)))
    held = SimpleNamespace(call=SimpleNamespace(playout=playout), flow=SimpleNamespace(session_id="s-1"))
    return held, SimpleNamespace(gone=asyncio.Event()), playout


async def test_the_bridge_waits_until_the_briefings_queued_end_was_played_to_the_person() -> None:
    held, leg, playout = briefing_queued(3.0)
    waiting = asyncio.create_task(_played_out(held, leg, asyncio.get_running_loop().time() + 30))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # 3 s of it still queued
    await asyncio.to_thread(playout.take, FRAME_BYTES * 150)  # PJSIP's media clock took it, on its own thread
    await asyncio.wait_for(waiting, 5)


@pytest.mark.parametrize(("queued", "budget", "gone"), [
    (0.1, 30.0, False),  # never played (the clock stopped): what was queued and a margin
    (30.0, 0.2, False),  # within WARM_SECONDS, whatever was queued
    (30.0, 30.0, True),  # the person hung up: nobody to play it to
])
async def test_the_wait_for_the_briefings_end_is_bounded(queued: float, budget: float, gone: bool) -> None:
    held, leg, _ = briefing_queued(queued)
    if gone:
        leg.gone.set()
    await asyncio.wait_for(_played_out(held, leg, asyncio.get_running_loop().time() + budget), 10)  # not 30 s


async def test_the_bots_line_is_the_summary_then_its_handlers_then_the_default() -> None:
    brief, failed = WarmStep("brief", to="+14155550123"), WarmStep("failed", reason="SIP 486")
    on_warm_transfer(lambda step: None)
    assert await warm_line(brief) == DEFAULT_BRIEFING and await warm_line(failed) == DEFAULT_FAILED
    assert await warm_line(brief, "Ana wants a refund.") == "Ana wants a refund."

    @on_warm_transfer
    async def lines(step: WarmStep) -> str | None:
        return f"{step.event}: {step.to or step.reason}"

    assert await warm_line(brief) == "brief: +14155550123"
    assert await warm_line(failed) == "failed: SIP 486"
    assert await warm_line(brief, "Ana wants a refund.") == "Ana wants a refund."  # the request's text first
    on_warm_transfer(lambda step: None)


async def test_the_bot_host_refuses_an_unknown_step_and_says_nothing_without_a_running_pipeline() -> None:
    answer = warm_handler(lambda: None)
    with pytest.raises(RequestFailed) as refused:
        await answer({"event": "shout"})
    assert refused.value.status == 400
    assert await answer({"event": "brief", "summary": "Ana wants a refund."}) == {"spoken": False}
    assert await answer({"event": "stop"}) == {"stopped": True}  # nothing running: nothing to interrupt


def test_the_callers_keys_do_not_reach_the_bot_while_on_hold() -> None:
    """A caller on a warm transfer's hold presses keys: the bot, talking to the person, is not told them."""
    keys: list[str] = []
    # The callback alone, on a stand-in for PJSUA's call (a real one needs a SIP dialog): its two fields.
    call: Any = SimpleNamespace(events=SimpleNamespace(pressed=keys.append), on_hold=None)
    press = SipCall.onDtmfDigit
    press(call, SimpleNamespace(digit="1"))
    call.on_hold = lambda audio: None  # sipedge/warm_transfer.py's Hold.start
    press(call, SimpleNamespace(digit="2"))
    call.on_hold = None  # back with the bot
    press(call, SimpleNamespace(digit="3"))
    assert keys == ["1", "3"]
