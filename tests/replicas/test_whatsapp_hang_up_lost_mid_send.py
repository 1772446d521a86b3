"""A WhatsApp call's `terminate` lost with the replica that was sending it: owed in the shared book
before it went out, it is sent again by another replica's sweep once the lost send's claim
(SENDING_SECONDS) has lapsed, on a clock the test moves instead of waiting it out. Two replicas'
hang-ups share one book and one-time store here, against Meta's strict fake; real replicas (the sweep
of a real process, the store's book on redis-server, a replica killed) are in
tests/replicas/test_whatsapp_replicas.py."""

from __future__ import annotations

import asyncio

from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.memory import LocalOnce
from dispatcher.store.timelines import MemoryTimelines
from dispatcher.whatsapp.graph import GraphCalls
from dispatcher.whatsapp.hang_ups import SENDING_SECONDS, HangUps
from tests.fakes.whatsapp import VERSION
from tests.phone.test_whatsapp_hang_ups import Line, line
from tests.support.waiting import within

__all__ = ["line"]


async def test_a_terminate_whose_replica_died_sending_it_is_sent_by_another_once_its_claim_lapses(
        line: Line) -> None:
    await line.hang_ups.mark("s-1", "answered")
    once, timelines = LocalOnce(), MemoryTimelines()  # the store's, shared by both replicas
    await timelines.append("s-1", {"event": "requested", "at": line.clock.now})  # the session's timeline opens
    survivors_graph = GraphCalls(f"{line.meta.url}/{VERSION}", line.meta.token)
    dying = HangUps(line.book, once, line.graph, SessionTimeline(timelines, "r-0"), clock=line.clock)
    survivors_timeline = SessionTimeline(timelines, "r-2")
    survivor = HangUps(line.book, once, survivors_graph, survivors_timeline, clock=line.clock)
    held = line.meta.hold(path_contains="/calls", times=1)  # Meta never answers the first terminate…
    sending = asyncio.create_task(dying.session_ended("s-1"))  # its stop, at the replica that then sends
    try:
        assert await within(lambda: held.caught == 1, 10.0), "the first terminate never reached Meta"
        sending.cancel()  # …and the replica that sent it dies waiting
        await asyncio.gather(sending, return_exceptions=True)
        await survivor.session_ended("s-1")  # its bot's `ended`, seen at the survivor: the end is taken already
        await survivor.sweep()
        assert line.terminates() == 1 and line.call.state == "accepted", "sent again while the lost send's claim held"
        line.clock.now += SENDING_SECONDS
        await survivor.sweep()
        assert (line.call.state, line.terminates()) == ("terminated", 2), "the owed terminate not swept"
        await survivors_timeline.settled()
        answers = [e for e in await timelines.read("s-1") if e["event"] == "whatsapp_answer"]
        assert [(e.get("action"), e.get("reason")) for e in answers] == [("terminate", "reconciled")], answers
    finally:
        held.release()  # the lost request lands late: Meta refuses it, the call being over
        await survivors_graph.aclose()
    assert line.call.actions == ["terminate"]  # one hang-up taken (the line's call was answered as it rang)
