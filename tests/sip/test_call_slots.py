"""A call's PJSUA2 object is gone once PJSUA ended the call (tests/sip/pjsip_slot_probe.py: the edge's
SIP stack in a real PJSUA2 endpoint). PJSUA gives an ended call's slot to the next INVITEs, while a
call's flow may hold the ended call's object for seconds more (telling the dispatcher how it ended,
closing its stream): that object, dropped late, must not touch the new call in its slot. PJSUA2's own
destructor would unhook whichever call has the slot from the edge and hang it up, and the edge would
never hear that call end: its admission slot never given back. The edge counts its admitted calls by
call, not by slot: a slot given again in the same round of SIP events as its call ended is two calls."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from sipedge.call_transfer import NotHanded
from sipedge.config import EdgeConfig, Trunk
from sipedge.edge import Edge
from sipedge.playout import Playout
from sipedge.stack import PJSUA_CALLS, run_work
from tests.support.ports import free_port, free_port_pair

PROBE_SECONDS = 60


def test_an_ended_calls_object_dropped_late_leaves_the_new_call_in_its_slot_alone() -> None:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_slot_probe", str(free_port(socket.SOCK_DGRAM)),
                          str(free_port_pair(2 * PJSUA_CALLS))],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probed = json.loads(run.stdout.strip().splitlines()[-1])
    assert probed["reused_slot"] == probed["slot"]
    assert probed["ended_seen"], probed  # the stack heard the new call end: its slot is given back
    assert probed["finals"] == [486], probed  # the edge's own answer, not PJSUA2's hang-up of it


class Ringing:
    """An INVITE's call as the edge's `_incoming` reads it (the SIP stack is not started here)."""

    def __init__(self, slot: int) -> None:
        self.call_id = slot
        self.playout = Playout()
        self.admitted_from: str | None = None
        self.over_tls = False  # a UDP call to a trunk without SRTP, as SipCall reads it
        self.srtp_mandatory = False
        self.keyed = False  # its INVITE offered no SRTP
        self.keys_offered = False
        self.keys_doubt = None
        self.credential: str | None = None  # no front named a credential: a trunk by source alone
        self.info = SimpleNamespace(localUri="<sip:+14155550199@127.0.0.1>",
                                    remoteUri="<sip:+14155550100@127.0.0.1>", callIdString=f"call-{slot}")

    def getInfo(self) -> SimpleNamespace:  # noqa: N802  (PJSUA2's name)
        return self.info

    def respond(self, status: int, retry_after: int | None = None, session_id: str | None = None) -> None: ...

    def end(self) -> None: ...


def ringing(slot: int) -> Any:
    return Ringing(slot)


async def test_a_slot_given_again_before_its_ended_call_is_forgotten_keeps_the_sources_share() -> None:
    trunk = Trunk("loopback", (ipaddress.ip_network("127.0.0.1/32"),), {"+14155550199": None})
    edge = Edge(EdgeConfig("http://127.0.0.1:9", "127.0.0.1", 5060, 20000, 2 * PJSUA_CALLS, 30.0, (trunk,)),
                asyncio.get_running_loop())
    try:
        ended, reused = ringing(0), ringing(0)  # PJSUA gave slot 0 again before the SIP thread forgot the first
        for call in (ended, reused):
            edge._incoming(call, "127.0.0.1:5070", "INVITE sip:+14155550199@127.0.0.1 SIP/2.0\r\n\r\n")
        edge._ended(ended)
        assert edge.calls_in_flight() == 1  # the call in the reused slot is still under way
        edge._ended(reused)
        assert edge.calls_in_flight() == 0
        share = edge.capacity - 1  # the trunk's source may hold all but one of the edge's calls
        for slot in range(1, share + 1):
            edge._incoming(ringing(slot), "127.0.0.1:5070", "INVITE sip:+14155550199@127.0.0.1 SIP/2.0\r\n\r\n")
        assert edge.calls_in_flight() == share, edge.refusals
    finally:
        await wound_down(edge)


async def wound_down(edge: Edge) -> None:
    """The edge's call flows, tracked once the loop turns, cancelled; its link to the dispatcher closed."""
    await asyncio.sleep(0)
    for flow in list(edge._flows):
        flow.cancel()
    await asyncio.gather(*edge._flows, return_exceptions=True)
    await edge.link.close()


def test_work_that_fails_on_the_sip_thread_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def on_a_released_call() -> None:  # what a PJSUA2 method of a call released at its end raises
        raise TypeError("in method 'Call_answer', argument 1 of type 'pj::Call *'")

    run_work(on_a_released_call)
    assert "work on the SIP thread failed" in caplog.text


async def test_a_bridged_persons_call_holds_one_of_the_edges_slots_until_it_ends() -> None:
    # Counted by call as admitted ones are: a bridge takes two slots, the caller's and the person's.
    trunk = Trunk("loopback", (ipaddress.ip_network("127.0.0.0/24"),), {"+14155550199": None})
    edge = Edge(EdgeConfig("http://127.0.0.1:9", "127.0.0.1", 5060, 20000, 2 * PJSUA_CALLS, 30.0, (trunk,)),
                asyncio.get_running_loop())
    invite = "INVITE sip:+14155550199@127.0.0.1 SIP/2.0\r\n\r\n"
    try:
        callers = [ringing(slot) for slot in range(edge.capacity - 1)]
        for call in callers:
            edge._incoming(call, "127.0.0.1:5070", invite)
        edge.stack.calls = {call.call_id: call for call in callers}  # the SIP stack's, as PJSUA gave them
        person = ringing(edge.capacity - 1)
        assert edge.leg(lambda: person) is person
        assert edge.calls_in_flight() == edge.capacity
        edge._incoming(ringing(edge.capacity), "127.0.0.2:5070", invite)  # the person's call took the last slot
        assert edge.calls_in_flight() == edge.capacity, "an INVITE was admitted into the person's slot"
        with pytest.raises(NotHanded) as full:
            edge.leg(lambda: pytest.fail("a person's call placed with no slot free"))
        assert (full.value.status, full.value.code) == (503, "edge_full")
        edge._ended(person)
        assert edge.calls_in_flight() == edge.capacity - 1
    finally:
        await wound_down(edge)
