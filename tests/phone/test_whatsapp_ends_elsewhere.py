"""Which of Meta's `terminate` webhooks a region sends on to the others (dispatcher/whatsapp/calls.py): only
one for a call it neither ended nor was told the end of. Meta sends its `terminate` for every end,
whoever ended the call, so the region that hung a call up or rejected it, and has closed its record,
asks nobody.

One in-process dispatcher as region `eu` of two (`us` named in REGIONS); what eu would send its peers is
recorded in place of the peers (the relay itself, with real regions: tests/regions/test_whatsapp_across_regions.py).
Meta is its strict fake; the bots are the stand-in, whose answers the fake judges after `answer-to:`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

import dispatcher.whatsapp.calls as whatsapp_calls
from dispatcher.whatsapp.calls import WhatsAppCalls
from dispatcher.whatsapp.events import CallEvent
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.phone.test_whatsapp_faults import sent, standin_answers
from tests.phone.test_whatsapp_webhook import OFFER, Meta, dispatcher
from tests.support.ports import free_port

__all__ = ["standin_answers"]


REGIONS = {"REGION": "eu", "REGIONS": f"eu=http://127.0.0.1:{free_port()},us=http://127.0.0.1:{free_port()}",
           "REGION_SECRET": "ends-elsewhere-region-secret-0123456789"}


class Peers:
    """Stands in for the other regions: the events eu sends them, each answered once `answering` is set (a
    region down or hanging holds each for its tries)."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.answering = asyncio.Event()
        self.answering.set()

    async def send(self, event: CallEvent) -> None:
        self.events.append(event)
        await self.answering.wait()

    async def aclose(self) -> None:
        pass

    def asked_about(self, call_id: str) -> int:
        return sum(1 for event in self.events if event.call_id == call_id)


@pytest.fixture
async def eu() -> AsyncIterator[tuple[Meta, Peers]]:
    with serve(FakeWhatsApp()) as fake:
        async with dispatcher(fake, PHONE_NUMBER_ID, REGIONS) as running:
            peers = Peers()
            whatsapp(running)._elsewhere = peers
            yield running, peers


def whatsapp(meta: Meta) -> WhatsAppCalls:
    calls: WhatsAppCalls | None = meta.dispatcher.state.whatsapp
    assert calls is not None
    return calls


async def deliver(meta: Meta, webhook: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    """`webhook` answered 200 (what it said), and its handling done."""
    answer = await deliver_only(meta, webhook)
    await whatsapp(meta).settled()
    return answer


async def deliver_only(meta: Meta, webhook: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    """`webhook` answered 200 (what it said), its handling left under way."""
    body, headers = webhook
    answer = await meta.dispatcher.client.post("/phone/whatsapp", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_meta_s_terminate_for_a_call_the_region_hung_up_is_sent_to_no_other_region(
        eu: tuple[Meta, Peers]) -> None:
    meta, peers = eu
    call = meta.fake.ring(OFFER)
    await deliver(meta, meta.fake.connect_webhook(call))
    assert call.state == "accepted"
    whatsapp(meta).sessions.timeline.note(meta.launches[0], "ended", reason="bot_hung_up")
    await whatsapp(meta).settled()
    assert sent(meta) == ["pre_accept", "accept", "terminate"]
    assert (await deliver(meta, meta.fake.terminate_webhook(call)))["taken"] == 1  # Meta's, for the end eu sent
    assert peers.events == []


async def test_meta_s_terminate_for_a_call_the_region_rejected_is_sent_to_no_other_region(
        eu: tuple[Meta, Peers], monkeypatch: pytest.MonkeyPatch) -> None:
    meta, peers = eu
    monkeypatch.setenv("STANDIN_MODE", "fail-start")
    call = meta.fake.ring(OFFER)
    await deliver(meta, meta.fake.connect_webhook(call))
    assert call.state == "rejected"
    assert (await deliver(meta, meta.fake.terminate_webhook(call, "REJECTED")))["taken"] == 1
    assert peers.events == []


async def test_meta_s_terminate_for_a_call_the_region_never_took_is_sent_to_the_others_once(
        eu: tuple[Meta, Peers]) -> None:
    meta, peers = eu
    call = meta.fake.ring(OFFER)  # its connect went to another region
    terminate = meta.fake.terminate_webhook(call)
    assert (await deliver(meta, terminate))["taken"] == 1
    assert (await deliver(meta, terminate))["taken"] == 0  # Meta's retry: taken once
    assert peers.asked_about(call.call_id) == 1


async def test_meta_s_terminate_stops_a_call_the_shared_book_missed_and_is_sent_to_the_others_too(
        eu: tuple[Meta, Peers]) -> None:
    """The store blinked as the call was booked (a forgiving book keeps it in its replica's memory only), and
    Meta's terminate reaches another replica of the region: the book says the region does not hold the call,
    yet the session its call id gives here is stopped (and the other regions are asked, as it may be theirs)."""
    meta, peers = eu
    call = meta.fake.ring(OFFER)
    await deliver(meta, meta.fake.connect_webhook(call))
    assert call.state == "accepted"
    session_id = meta.launches[0]
    await whatsapp(meta).hang_ups.close(session_id)  # in no shared book; answered, the call is in no `_live`
    await deliver(meta, meta.fake.terminate_webhook(call))  # the caller hung up
    session = (await meta.dispatcher.client.get(f"/sessions/{session_id}")).json()
    assert session["status"] in ("stopping", "ended"), session
    assert peers.asked_about(call.call_id) == 1
    assert sent(meta) == ["pre_accept", "accept"]  # Meta ended it: nothing hung up


async def test_terminates_sent_on_to_a_hanging_region_hold_no_room_of_this_region_s_calls(
        eu: tuple[Meta, Peers], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Bounds lowered so the test is short (both are 1,000): room for three calls, two relays at once."""
    meta, peers = eu
    calls = whatsapp(meta)
    monkeypatch.setattr(whatsapp_calls, "MAX_TASKS", 3)
    monkeypatch.setattr(whatsapp_calls, "MAX_RELAYS", 2)
    peers.answering.clear()  # the other region hangs
    strays = [meta.fake.ring(OFFER) for _ in range(3)]  # calls other regions took
    for stray in strays:
        await deliver_only(meta, meta.fake.terminate_webhook(stray))
        assert await meta.fake.eventually(lambda: not calls._tasks)  # handled here; its relay may wait on
    assert [peers.asked_about(stray.call_id) for stray in strays] == [1, 1, 0]  # the third dropped
    assert any("not sent on to the other regions" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    call = meta.fake.ring(OFFER)  # this region's own call still answered
    await deliver_only(meta, meta.fake.connect_webhook(call))
    assert await meta.fake.eventually(lambda: call.state == "accepted")
    peers.answering.set()
    await calls.settled()

