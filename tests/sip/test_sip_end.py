"""How the edge names a call's SIP end from what PJSUA reports (sipedge/sip_end.py): the request that
ended it as received, whether it was answered, PJSUA's last status; and an answered call's seconds on
the edge's clock (sipedge/call_flow.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from sipedge import call_flow
from sipedge.call_flow import CallFlow
from sipedge.dispatcher_link import DispatcherLink
from sipedge.outbound_call import OutboundFlow
from sipedge.playout import Playout
from sipedge.sip_end import MAX_REASON_CHARS, SipEnd, disconnected, edge_hung_up, reason_header

BYE = ("BYE sip:+14155550199@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"
       "reason :  Q.850;cause=16;text=\"Normal call clearing\"\r\nReason: SIP;cause=200\r\nContent-Length: 0\r\n\r\n")
CANCEL = "CANCEL sip:+14155550199@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070\r\n\r\n"


def test_a_trunks_bye_is_the_callers_with_its_first_reason_header() -> None:
    assert disconnected(BYE, True, 200, "Normal call clearing") == SipEnd(
        "caller", "bye", None, 'Q.850;cause=16;text="Normal call clearing"')


def test_a_cancel_is_the_callers_487_whether_or_not_pjsua_names_the_request() -> None:
    assert disconnected(CANCEL, False, 487, "Request Terminated") == SipEnd("caller", "cancel", 487)
    assert disconnected(None, False, 487, "Request Terminated") == SipEnd("caller", "cancel", 487)


def test_an_answered_call_ended_by_a_request_pjsua_does_not_name_is_the_callers_bye() -> None:
    assert disconnected(None, True, 200, "Normal call clearing") == SipEnd("caller", "bye")


def test_a_200_ok_never_acknowledged_is_pjsips_own_end() -> None:
    assert disconnected(None, False, 408, "ACK timeout") == SipEnd("edge", "failed", 408, "ACK timeout")


def test_the_edges_own_end_is_bye_once_answered_else_503() -> None:
    assert edge_hung_up(True) == SipEnd("edge", "bye", reason="the bot's side ended")
    assert edge_hung_up(False) == SipEnd("edge", "refused", 503, "the bot's side ended")


def test_a_reason_is_read_from_the_head_only_and_cut_to_the_dispatchers_bound() -> None:
    assert reason_header("BYE x SIP/2.0\r\n\r\nReason: in the body") is None
    long = SipEnd("caller", "bye", reason="Q.850;text=" + "x" * 400).as_json()
    assert len(long["reason"]) == MAX_REASON_CHARS and "status" not in long


async def test_an_answered_calls_end_carries_its_answered_seconds_to_its_end_on_the_edges_clock() -> None:
    """From the 200 OK to the moment PJSUA reported the BYE (read on the SIP thread, not when the loop got to it),
    or the hand-over to a person; a call never answered carries none."""
    loop = asyncio.get_running_loop()
    flow = CallFlow(loop, Playout())
    bye = SipEnd("caller", "bye")
    assert flow.timed(bye) == bye and flow.timed(None) is None  # not answered
    flow.answered_at = time.monotonic() - 5.0
    flow.sip_ended(bye)
    await asyncio.sleep(1.0)  # the loop gets to it late: the BYE's moment stays
    told = flow.timed(flow.sip_end)
    assert told is not None and 5.0 <= (told.answered_seconds or 0) < 6.0, told
    assert told.as_json()["answered_seconds"] == told.answered_seconds
    handed = CallFlow(loop, Playout())
    handed.answered_at = time.monotonic() - 2.0
    handed.release(SipEnd("edge", "bridged", 200, "bridged to sip:person@example.com"))
    await asyncio.sleep(1.0)
    told = handed.timed(handed.handed)
    assert told is not None and 2.0 <= (told.answered_seconds or 0) < 3.0, told
    cancelled = CallFlow(loop, Playout())
    cancelled.answered_at = time.monotonic() - 0.01  # the trunk's CANCEL crossed the 200 OK
    told = cancelled.timed(SipEnd("caller", "cancel", 487))
    assert told is not None and told.answered_seconds == 0.0


async def test_an_end_whose_count_the_dispatcher_refuses_is_told_again_without_it() -> None:
    """A dispatcher that takes no count from this edge (403: a credential it does not take; 422: a release older
    than the count) still gets the call's end, for its webhook and report, at once and without the count."""
    for refusal in (403, 422):
        told: list[tuple[dict[str, Any], str | None]] = []

        async def sip_end(request: web.Request, refusal: int = refusal, told: list[Any] = told) -> web.Response:
            body, secret = await request.json(), request.headers.get("X-Voicefleet-Edge-Secret")
            told.append((body, secret))
            return web.Response(status=refusal if "answered_seconds" in body else 204)

        app = web.Application()
        app.router.add_post("/sessions/{id}/sip_end", sip_end)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        link = DispatcherLink(str(server.make_url("")).rstrip("/"), "edge-credential")
        try:
            taken = await link.tell_end("key", "s-1", SipEnd("caller", "bye", answered_seconds=12.5))
        finally:
            await link.close()
            await server.close()
        assert taken is True
        assert told == [({"by": "caller", "how": "bye", "answered_seconds": 12.5}, "edge-credential"),
                        ({"by": "caller", "how": "bye"}, None)], refusal


async def test_an_outbound_calls_far_end_is_the_callee_and_its_minutes_count_from_its_answer() -> None:
    """PJSUA names the trunk's side the caller; on a call the edge placed that side is the callee. The answer's
    moment is read on the SIP thread as the callee's 200 OK is ACKed, not once the loop gets to it."""
    flow = OutboundFlow(asyncio.get_running_loop(), Playout())
    picked_at = time.monotonic()
    sip_thread = threading.Thread(target=flow.picked_up)  # PJSUA's thread tells it...
    sip_thread.start()
    sip_thread.join()
    time.sleep(0.5)  # ...while the loop is busy elsewhere
    await asyncio.sleep(0)
    assert flow.picked.is_set() and flow.answered_at is not None and flow.answered_at - picked_at < 0.1
    flow.sip_ended(SipEnd("caller", "bye", reason="Q.850;cause=16"))
    await asyncio.sleep(0.1)
    told = flow.timed(flow.sip_end)
    assert told is not None and (told.by, told.how, told.reason) == ("callee", "bye", "Q.850;cause=16")
    assert told.answered_seconds is not None and 0.5 <= told.answered_seconds < 1.6


async def test_a_callers_bye_that_comes_while_the_bots_stream_closes_is_told_as_the_calls_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot's side ended first (its stream to close, nothing to tell yet), and the caller's BYE came while
    that stream closed: the BYE is the call's end, told with its count; the edge sends no BYE of its own."""
    loop = asyncio.get_running_loop()
    flow = CallFlow(loop, Playout())
    told: list[dict[str, Any]] = []

    async def start(request: web.Request) -> web.Response:
        url = str(request.url.with_path("/ws").with_scheme("ws"))
        return web.json_response({"sessionId": "s-1", "token": "t-1", "wsUrl": url}, status=201)

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        while (await ws.receive()).type != WSMsgType.CLOSE:  # the handshake's frames
            pass
        # The edge closes the bot's stream, and the trunk's BYE comes meanwhile (on PJSUA's thread).
        threading.Thread(target=lambda: (flow.sip_ended(SipEnd("caller", "bye", 200)), flow.hung_up(200))).start()
        await asyncio.wait_for(flow.caller_gone.wait(), 30)  # the BYE reached the edge's loop before the close ends
        await ws.close()
        return ws

    async def sip_end(request: web.Request) -> web.Response:
        told.append(await request.json())
        return web.Response(status=204)

    async def bot_side_ended(flow: CallFlow, *_: Any) -> None:
        flow.answered, flow.answered_at = True, time.monotonic() - 3.0

    monkeypatch.setattr(call_flow, "_call", bot_side_ended)
    app = web.Application()
    app.router.add_post("/start", start)
    app.router.add_get("/ws/t-1", stream)
    app.router.add_post("/sessions/{id}/sip_end", sip_end)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    link = DispatcherLink(str(server.make_url("")).rstrip("/"), "edge-credential")
    hung_up: list[str] = []
    try:
        await asyncio.wait_for(call_flow.run_call(flow, link, "key", {"call_id": "c-1"}, lambda *_: None,
                                                  lambda: hung_up.append("BYE"), answer_seconds=5), 10)
    finally:
        await link.close()
        await server.close()
    assert hung_up == []  # the caller hung up: no BYE of the edge's
    assert len(told) == 1 and (told[0]["by"], told[0]["how"], told[0]["status"]) == ("caller", "bye", 200), told
    assert 3.0 <= told[0]["answered_seconds"] < 30, told  # from the 200 OK 3 s before, to the BYE
