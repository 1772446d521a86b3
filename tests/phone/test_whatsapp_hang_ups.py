"""A WhatsApp call's hang-up decided once and owed until Meta answers, in one process's book
(dispatcher/whatsapp/hang_ups.py, dispatcher/store/whatsapp_book.py) against Meta's strict fake, on a
clock the test moves: the store's book and real replicas: tests/replicas/test_whatsapp_replicas.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise
from typing import cast

import pytest

from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.memory import LocalOnce
from dispatcher.store.timelines import MemoryTimelines
from dispatcher.store.whatsapp_book import MemoryWhatsAppBook
from dispatcher.whatsapp.graph import BACKOFF, GraphCalls, GraphRefused
from dispatcher.whatsapp.hang_ups import FIRST_RETRY_SECONDS, GIVE_UP_SECONDS, SENDING_SECONDS, HangUps
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, VERSION, FakeWhatsApp, FakeWhatsAppCall
from tests.phone.test_whatsapp_webhook import OFFER


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Line:
    """Meta's fake with one accepted call, and the hang-ups of one process."""

    def __init__(self, meta: FakeWhatsApp) -> None:
        self.meta, self.clock = meta, Clock()
        self.book = MemoryWhatsAppBook(clock=self.clock)
        self.graph = GraphCalls(f"{meta.url}/{VERSION}", meta.token)
        self.hang_ups = HangUps(self.book, LocalOnce(), self.graph, SessionTimeline(MemoryTimelines(), "r-test"),
                                clock=self.clock)
        self.call: FakeWhatsAppCall = meta.ring(OFFER)
        self.call.state = "accepted"  # answered (how is tests/phone/test_whatsapp_faults.py's)

    def terminates(self) -> int:
        return sum(1 for c in self.meta.calls_to("POST", "/calls") if (c.json() or {}).get("action") == "terminate")


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    with serve(FakeWhatsApp()) as meta:
        made = Line(meta)
        await made.hang_ups.book("s-1", made.call.call_id, PHONE_NUMBER_ID)
        yield made
        await made.graph.aclose()


async def test_a_session_that_ended_before_its_accept_was_marked_is_found_by_the_accept(line: Line) -> None:
    await line.hang_ups.session_ended("s-1")  # seen at some replica while the call was being answered
    assert line.terminates() == 0  # not answered yet: nothing to hang up
    booked = await line.hang_ups.mark("s-1", "answered")
    assert booked is not None and booked.ended  # the accept's mark reads the end


async def test_an_answered_call_is_terminated_once_however_often_its_session_s_end_is_seen(line: Line) -> None:
    await line.hang_ups.mark("s-1", "answered")
    for _ in range(3):  # its stop, its bot's `ended`, its machine's end
        await line.hang_ups.session_ended("s-1")
    assert (line.call.state, line.call.actions, line.terminates()) == ("terminated", ["terminate"], 1)
    await line.hang_ups.sweep()
    assert line.terminates() == 1  # nothing was owed once Meta answered


async def test_a_terminate_meta_never_answers_is_swept_with_backoff_then_given_up(line: Line) -> None:
    await line.hang_ups.mark("s-1", "answered")
    line.meta.fail(503, times=1_000, path_contains="/calls")
    await line.hang_ups.session_ended("s-1")
    assert line.terminates() == BACKOFF.attempts
    await line.hang_ups.sweep()
    assert line.terminates() == BACKOFF.attempts  # not due yet
    line.clock.now += FIRST_RETRY_SECONDS
    await line.hang_ups.sweep()
    assert line.terminates() == 2 * BACKOFF.attempts  # sent again (with its own tries); Meta still failing
    line.clock.now += GIVE_UP_SECONDS + 1
    await line.hang_ups.sweep()
    assert line.terminates() == 2 * BACKOFF.attempts  # given up: not sent an hour on
    line.clock.now += GIVE_UP_SECONDS
    await line.hang_ups.sweep()
    assert line.terminates() == 2 * BACKOFF.attempts  # and forgotten


async def test_a_session_that_ended_while_its_accept_was_sent_is_hung_up_if_its_replica_died(line: Line) -> None:
    await line.hang_ups.mark("s-1", "accepting")  # then its replica is killed while Meta takes the accept
    await line.hang_ups.session_ended("s-1")  # seen at another replica
    assert line.terminates() == 0  # the accept may still be under way
    line.clock.now += SENDING_SECONDS
    await line.hang_ups.sweep()
    assert (line.call.state, line.terminates()) == ("terminated", 1)


async def test_the_answering_replica_alive_hangs_up_a_call_whose_session_ended_while_accepting(line: Line) -> None:
    await line.hang_ups.mark("s-1", "accepting")
    await line.hang_ups.session_ended("s-1")
    booked = await line.hang_ups.mark("s-1", "answered")  # the accept's own mark reads the end
    assert booked is not None and booked.ended
    await line.hang_ups.hang_up("s-1", booked)
    line.clock.now += SENDING_SECONDS
    await line.hang_ups.sweep()
    assert line.terminates() == 1  # the owed one cleared by its hang-up


async def test_an_end_seen_at_shutdown_while_another_replica_accepts_waits_for_the_accept(line: Line) -> None:
    line.call.state = "pre_accepted"  # Meta took the pre_accept; another replica is sending the accept
    await line.hang_ups.mark("s-1", "accepting")
    await line.hang_ups.owe_end("s-1")  # the session's end, seen at a replica shutting down
    await line.hang_ups.sweep()  # any replica's next sweep, before the accept lands
    assert line.terminates() == 0  # Meta would refuse it (not accepted yet), and the record would be closed
    line.call.state = "accepted"  # the accept lands: its replica's mark reads the end
    booked = await line.hang_ups.mark("s-1", "answered")
    assert booked is not None and booked.ended
    line.clock.now += SENDING_SECONDS  # that replica killed before hanging it up: the sweep does
    await line.hang_ups.sweep()
    assert (line.call.state, line.terminates()) == ("terminated", 1)


class DiesAfterTaking:
    """A replica killed the moment the call's one-time end is taken (SIGKILL, OOM, node loss)."""

    def __init__(self, once: LocalOnce) -> None:
        self.once = once

    async def first_use(self, what: str, seconds: float) -> bool:
        await self.once.first_use(what, seconds)
        raise asyncio.CancelledError("replica killed")


async def test_a_replica_killed_right_after_taking_a_call_s_end_leaves_its_hang_up_owed(line: Line) -> None:
    await line.hang_ups.mark("s-1", "answered")
    once = LocalOnce()  # the store's one-time records, shared by both replicas
    timeline = SessionTimeline(MemoryTimelines(), "r-test")
    dying = HangUps(line.book, DiesAfterTaking(once), line.graph, timeline, clock=line.clock)
    survivor = HangUps(line.book, once, line.graph, timeline, clock=line.clock)
    with pytest.raises(asyncio.CancelledError):
        await dying.session_ended("s-1")  # its stop
    await survivor.session_ended("s-1")  # its bot's `ended`, elsewhere: the end is taken already
    assert line.terminates() == 0
    line.clock.now += SENDING_SECONDS
    await survivor.sweep()
    assert (line.call.state, line.terminates()) == ("terminated", 1)


class SlowDeadMeta:
    """Meta out: each terminate unanswered after `seconds` of its tries (on the test's clock); `meanwhile`
    runs while one is in flight (another replica's sweep)."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self.sends: dict[str, list[tuple[float, float]]] = {}
        self.in_flight: set[str] = set()
        self.overlaps: list[str] = []
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    async def end(self, phone_number_id: str, call_id: str, action: str) -> None:
        if call_id in self.in_flight:
            self.overlaps.append(call_id)
        self.in_flight.add(call_id)
        start = self.clock.now
        self.clock.now += self.seconds
        if self.meanwhile is not None:
            await self.meanwhile()
        self.in_flight.discard(call_id)
        self.sends.setdefault(call_id, []).append((start, self.clock.now))
        raise GraphRefused(0, None, f"{action} not taken after retries (timeout)")


async def test_two_replicas_sweeping_while_meta_is_out_never_send_one_hang_up_at_once() -> None:
    clock = Clock()
    book, once, timeline = MemoryWhatsAppBook(clock=clock), LocalOnce(), SessionTimeline(MemoryTimelines(), "r")
    slow, quick = SlowDeadMeta(clock, 12.0), SlowDeadMeta(clock, 0.0)
    first = HangUps(book, once, cast(GraphCalls, slow), timeline, clock=clock)
    second = HangUps(book, once, cast(GraphCalls, quick), timeline, clock=clock)
    for n in range(3):  # three answered calls whose terminates are owed
        await book.open(f"s-{n}", f"wacid.{n}", PHONE_NUMBER_ID, 3_600)
        await book.owe(f"s-{n}", clock.now)
    quick.in_flight = slow.in_flight  # one Meta: a call in flight from either replica
    slow.meanwhile = second.sweep
    await first.sweep()
    await first.sweep()
    assert slow.overlaps == [] and quick.overlaps == []
    for call_id in {*slow.sends, *quick.sends}:  # each sent again no sooner than the backoff after its last try
        tries = sorted(slow.sends.get(call_id, []) + quick.sends.get(call_id, []))
        assert all(after[0] - before[1] >= FIRST_RETRY_SECONDS for before, after in pairwise(tries)), tries



class BrokenForOneCall:
    """Meta's client raising something unforeseen for one call, taking every other call's terminate."""

    def __init__(self, broken: str) -> None:
        self.broken = broken
        self.ended: list[str] = []

    async def end(self, phone_number_id: str, call_id: str, action: str) -> None:
        if call_id == self.broken:
            raise RuntimeError("unforeseen")
        self.ended.append(call_id)


async def test_one_owed_hang_up_that_cannot_be_swept_stops_no_other() -> None:
    clock = Clock()
    book, graph = MemoryWhatsAppBook(clock=clock), BrokenForOneCall("wacid.0")
    hang_ups = HangUps(book, LocalOnce(), cast(GraphCalls, graph), SessionTimeline(MemoryTimelines(), "r"),
                       clock=clock)
    for n in range(2):
        await book.open(f"s-{n}", f"wacid.{n}", PHONE_NUMBER_ID, 3_600)
        await book.owe(f"s-{n}", clock.now)
    await hang_ups.sweep()
    assert graph.ended == ["wacid.1"]
