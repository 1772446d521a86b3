"""A SIP call handed to a person warm: a real local dispatcher running a bot that briefs (tests/sip/briefing_bot.py:
its "voice" is a BRIEFING_HZ tone, its lines written down), `python -m sipedge` with a trunk that both brings
calls in and places them (its termination is a second SIPp, the person), and SIPp as the trunk's caller.
`POST /sessions/{id}/transfer` with `mode: warm`: the caller hears the hold tones while the person rings, the
person hears the bot's briefing to its end before the bridge (though the bot sent it ahead of real time), then
the caller's voice; a person who does not answer, or hangs up during the briefing, leaves the caller with the
bot, which says so (and the caller never hears the briefing); the person's leg is priced from their answer
however it ends. The caller stays on the line until the test has what it waits for, then is cued
(tests/sip/caller_cue.py) to speak or hang up."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_parrot_websocket import voiced
from tests.sip.briefing_bot import BRIEFING_HZ, FAILED_HZ, LINE_SECONDS, LONG_BRIEFING, UNANSWERED_LINE
from tests.sip.caller_cue import CuedCaller
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.loopback_rtp import RTP_HEADER, can_capture, decode, rtp_payload
from tests.sip.loopback_udp import LoopbackUdp
from tests.sip.sipp import SippRun, run_callee
from tests.sip.test_transfer import EDGE_SECRET, active_session, bridged_line, ended_events, events_of, one
from tests.support.audio import Pcm, echo_similarity
from tests.support.http_client import api_client
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, two SIPps, a bot process importing Pipecat

BRIEFING_BOT = Path(__file__).with_name("briefing_bot.py")
DESK = "+14155550123"  # the person, on PHONE_TRANSFER_TARGETS
SUMMARY = "Ana Lopez, order 1042, wants a refund for a broken lamp."
ANSWERED_SECONDS = 60.0
HEARD_SECONDS = 60.0  # for the edge's audio to reach the end of a window the test listens to, on a loaded machine
RATE = 8000
OUTBOUND_USD = 0.013  # the trunk's price a minute of the person's leg


@dataclass(frozen=True)
class Line:
    dispatcher: DispatcherProcess
    edge: EdgeProcess
    person_port: int
    reports: Path


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    with warm_line(tmp_path_factory) as started:
        yield started


@contextmanager
def warm_line(tmp_path_factory: pytest.TempPathFactory, workers: int = 1) -> Iterator[Line]:
    """The dispatcher running the briefing bot, and the edge (with `workers`) whose trunk's termination is the
    person's SIPp."""
    control_port, person_port = free_port(), free_port(socket.SOCK_DGRAM)
    reports = tmp_path_factory.mktemp("warm-calls")
    env = {**phone_env(reports), "BOT_FILE": str(BRIEFING_BOT),
           "SIP_EDGE_URL": f"http://127.0.0.1:{control_port}", "SIP_EDGE_SECRET": EDGE_SECRET,
           "PHONE_TRANSFER_TARGETS": f"{DESK},127.0.0.1", "PHONE_TRANSFER_TIME_LIMIT_SECONDS": "60"}
    settings = f'control_port = {control_port}\n{KEY_SETTINGS}'
    trunk = (f'termination_uri = "sip:127.0.0.1:{person_port}"\nring_seconds = 5\ndestinations = ["+1*"]\n'
             f"usd_per_minute = {{ inbound = 0.0085, outbound = {OUTBOUND_USD} }}\nbilling_increment_seconds = 1")
    with (run_dispatcher(tmp_path_factory.mktemp("warm-dispatcher"), env) as dispatcher,
          run_edge(dispatcher, tmp_path_factory.mktemp("warm-edge"), settings=settings, workers=workers,
                   trunk_settings=trunk, env={**edge_keys(EDGE_SECRET, f"http://127.0.0.1:{control_port}")}) as edge):
        yield Line(dispatcher, edge, person_port, reports)


async def warm_once_answered(api: httpx.AsyncClient, session_id: str, body: dict[str, Any]) -> httpx.Response:
    """The warm transfer, asked again while the call is not answered yet (404 not_found, 409 no_live_call)."""
    deadline = time.monotonic() + ANSWERED_SECONDS
    while True:
        answer = await api.post(f"/sessions/{session_id}/transfer", json={"mode": "warm", **body})
        code = answer.json()["error"]["code"] if answer.status_code >= 400 else ""
        if (answer.status_code, code) not in ((404, "not_found"), (409, "no_live_call")) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.3)


@dataclass
class WarmCall:
    session_id: str
    answer: httpx.Response  # the transfer's
    at: float  # when it came, epoch seconds
    caller: CuedCaller
    call: asyncio.Task[SippRun]
    person: asyncio.Task[SippRun]

    async def runs(self) -> tuple[SippRun, SippRun]:
        """The caller's and the person's SIPp runs, once over: the caller cued first (a no-op once cued)."""
        self.caller.cue()
        return await self.call, await self.person


async def warm_call(api: httpx.AsyncClient, line: Line, callee: str, caller_media: int, cued: CuedCaller,
                    person_media: int | None = None, *, scenario: str = "call_until_cued",
                    summary: str | None = SUMMARY) -> WarmCall:
    """A caller (`scenario`, cued by `cued`) handed warm, with `summary` (None: none), to a person playing `callee`,
    up to the transfer's answer."""
    await wait_for_idle_bot(api)
    person = asyncio.create_task(asyncio.to_thread(run_callee, callee, line.person_port, line.edge.workdir,
                                                   media_port=person_media))
    call = cued.calling(line.edge, scenario, caller_media)
    session_id = await active_session(api)
    answer = await warm_once_answered(api, session_id, {"to": DESK, **({"summary": summary} if summary else {})})
    return WarmCall(session_id, answer, time.time(), cued, call, person)


async def heard_past(capture: LoopbackUdp, port: int, until: float) -> None:
    """Once the edge has sent `port` audio past `until` (epoch seconds): a window up to it is all heard."""
    deadline = time.monotonic() + HEARD_SECONDS
    while not any(d.destination_port == port and d.at > until for d in list(capture.datagrams)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no audio to {port} after {until:.2f} within {HEARD_SECONDS:.0f} s")
        await asyncio.sleep(0.1)


def heard(capture: LoopbackUdp, port: int, start: float, end: float) -> np.ndarray:
    """What the edge sent to `port` between two epoch seconds (as lo carried it), as 8 kHz PCM."""
    payloads = [rtp_payload(d.payload) for d in list(capture.datagrams)
                if d.destination_port == port and len(d.payload) >= RTP_HEADER and start <= d.at <= end]
    return np.frombuffer(decode(b"".join(payloads), "ulaw"), dtype=np.int16)


def seconds_of(capture: LoopbackUdp, port: int, hz: float, start: float, end: float) -> float:
    """How long what the edge sent to `port` between two epoch seconds was mostly a `hz` tone, loud enough to hear:
    its packets' seconds, one by one (μ-law)."""
    packets = [np.frombuffer(decode(rtp_payload(d.payload), "ulaw"), dtype=np.int16) for d in list(capture.datagrams)
               if d.destination_port == port and len(d.payload) > RTP_HEADER and start <= d.at <= end]
    return sum(len(pcm) for pcm in packets if loudness(pcm) > 300 and share_at(pcm, hz) > 0.5) / RATE


def loudness(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def share_at(pcm: np.ndarray, hz: float) -> float:
    """The share of `pcm`'s energy within 60 Hz of `hz`."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / RATE)
    return float(spectrum[np.abs(freqs - hz) < 60].sum() / max(spectrum.sum(), 1e-9))


def said(line: Line, session_id: str) -> list[str]:
    path = line.reports / f"{session_id}.said"
    return path.read_text().splitlines() if path.exists() else []


async def test_a_warm_transfer_holds_the_caller_briefs_the_person_then_bridges_them(line: Line) -> None:
    await held_briefed_bridged(line)


async def held_briefed_bridged(line: Line) -> str:
    """A warm transfer's whole course, checked by what each side heard: the caller the hold tones while the
    person rang, the person the bot's briefing (the summary said), then the caller's voice. Its session."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=line.dispatcher.base_url, timeout=90) as api:
        await wait_for_idle_bot(api)
        caller_media, person_media = free_port_pair(2), free_port_pair(2)
        to_caller, to_person = LoopbackUdp({caller_media}), LoopbackUdp({person_media})
        cued = CuedCaller()
        try:
            person = asyncio.create_task(asyncio.to_thread(run_callee, "callee_answers", line.person_port,
                                                           line.edge.workdir, media_port=person_media))
            call = cued.calling(line.edge, "call_warm", caller_media)
            session_id = await active_session(api)
            asked = time.time()
            answer = await warm_once_answered(api, session_id, {"to": DESK, "summary": SUMMARY})
            bridged = time.time()
            cued.cue()  # bridged (or not, and the checks below say so): the caller speaks, and hangs up 6 s later
            run, far = await call, await person
        finally:
            cued.cue()
            to_caller.stop()
            to_person.stop()
        assert answer.status_code == 200, f"{answer.text}\n{line.edge.log()}\n{line.dispatcher.log()[-6000:]}"
        assert (answer.json()["mode"], answer.json()["carrier_status"]) == ("warm", "warm"), answer.json()
        assert run.returncode == 0, f"{run.output}\n{line.edge.log()}"
        assert far.returncode == 0, f"{far.output}\n{line.edge.log()}"
        invite = far.messages.split("\nINVITE ", 1)[1]
        assert f"From: <sip:{NUMBER}@" in invite, invite[:600]  # the number the caller dialled
        # While the person rang (they answer 0.5 s after their INVITE), the caller heard the hold tones.
        consulting = one(await events_of(api, session_id), "transfer_consulting")["at"]
        hold = heard(to_caller, caller_media, asked + 0.3, consulting)
        assert loudness(hold) > 300, f"the caller heard silence on hold ({loudness(hold):.0f})\n{line.edge.log()}"
        assert share_at(hold, BRIEFING_HZ) < 0.2  # the tones, not the bot's voice
        # Before the bridge the person heard the bot's briefing: its voice, and the request's summary said.
        briefing = heard(to_person, person_media, consulting, bridged - 0.2)
        assert loudness(briefing) > 300 and share_at(briefing, BRIEFING_HZ) > 0.5, (
            f"{loudness(briefing):.0f} {share_at(briefing, BRIEFING_HZ):.2f}\n{line.edge.log()}")
        assert said(line, session_id) == [SUMMARY]
        # All of it: its end, still queued at the edge when the bot said it was spoken, was played to them first.
        whole = seconds_of(to_person, person_media, BRIEFING_HZ, consulting, bridged)
        assert whole > LINE_SECONDS - 0.1, (
            f"the person heard {whole:.2f} s of the {LINE_SECONDS:g} s briefing before the bridge\n{line.edge.log()}")
        # Then the caller's voice reached the person.
        speech = voiced(Pcm(np.frombuffer(speech_8k(), dtype=np.int16), RATE))
        similarity = echo_similarity(speech, heard(to_person, person_media, bridged, time.time()), RATE)
        assert similarity > 0.7, f"the person heard the caller at {similarity:.2f}\n{line.edge.log()}"
        events = await ended_events(api, session_id)
        transferred = one(events, "transferred")
        assert (transferred["mode"], transferred["carrier_status"], transferred["to"]) == ("warm", "warm", DESK)
        assert one(events, "sip_ended")["how"] == "bridged"
        assert await wait_active_sessions(api, 0) == 0
    return session_id


def first_invite_at(capture: LoopbackUdp, cseq: int) -> float:
    """When the first INVITE of CSeq `cseq` crossed lo, among the captured datagrams."""
    for datagram in list(capture.datagrams):
        if datagram.payload.startswith(b"INVITE ") and f"CSeq: {cseq} INVITE".encode() in datagram.payload:
            return datagram.at
    raise AssertionError(f"no INVITE of CSeq {cseq} was captured")


async def test_reinvites_during_the_hold_and_the_briefing_keep_the_caller_on_the_tones_and_the_person_on_the_bot(
        line: Line) -> None:
    """One call, two re-INVITEs. The trunk's, while the person rings, gives the caller's call a new stream: it joins
    the hold tones again, never the bot's port, so the caller does not overhear the bot briefing the person. The
    person's side's, just after answering (PCMA, a new stream): the new stream is joined to the bot both ways, as
    the first was, so they hear the briefing in the new codec."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=line.dispatcher.base_url, timeout=90) as api:
        caller_media, person_media = free_port_pair(2), free_port_pair(2)
        to_caller, to_person = LoopbackUdp({caller_media}), LoopbackUdp({person_media})
        signalling = LoopbackUdp({line.edge.sip_port, line.person_port})
        cued = CuedCaller()
        try:
            warm = await warm_call(api, line, "callee_answers_late_reinvites", caller_media, cued, person_media,
                                   scenario="call_warm_reinvite")
            session_id, answer, bridged = warm.session_id, warm.answer, warm.at
            run, far = await warm.runs()  # the hold is over: the caller hangs up
        finally:
            cued.cue()
            to_caller.stop()
            to_person.stop()
            signalling.stop()
        assert answer.status_code == 200, f"{answer.text}\n{line.edge.log()}"
        assert run.returncode == 0, f"{run.output}\n{line.edge.log()}"
        assert far.returncode == 0, f"{far.output}\n{line.edge.log()}"
        consulting = one(await events_of(api, session_id), "transfer_consulting")["at"]
        rung, moved = first_invite_at(signalling, 1), first_invite_at(signalling, 2)
        person_rung = [d.at for d in list(signalling.datagrams)
                       if d.destination_port == line.person_port and d.payload.startswith(b"INVITE ")]
        assert person_rung and person_rung[0] < moved < consulting, (  # the re-INVITE came during the hold
            f"call {rung:.2f}, person rung {person_rung[:1]}, re-INVITE {moved:.2f}, consulting {consulting:.2f}")
        on_hold = heard(to_caller, caller_media, consulting, bridged - 0.2)
        assert loudness(on_hold) > 300, f"the caller heard silence on hold ({loudness(on_hold):.0f})\n{line.edge.log()}"
        assert share_at(on_hold, BRIEFING_HZ) < 0.2, (
            f"the caller overheard the briefing ({share_at(on_hold, BRIEFING_HZ):.2f})\n{line.edge.log()}")
        # The person's re-INVITE answered 200, and their new stream carried the briefing in A-law.
        assert [m for m in far.messages.splitlines() if m.startswith("SIP/2.0 200")], far.messages[-2000:]
        pcma = [d for d in list(to_person.datagrams) if d.destination_port == person_media
                and len(d.payload) >= RTP_HEADER and d.payload[1] & 0x7F == 8 and consulting <= d.at <= bridged - 0.2]
        briefing = np.frombuffer(decode(b"".join(rtp_payload(d.payload) for d in pcma), "alaw"), dtype=np.int16)
        assert loudness(briefing) > 300 and share_at(briefing, BRIEFING_HZ) > 0.5, (
            f"the person's new stream: {len(pcma)} packets, {loudness(briefing):.0f}, "
            f"{share_at(briefing, BRIEFING_HZ) if len(briefing) else 0:.2f}\n{line.edge.log()}")
        assert await wait_active_sessions(api, 0) == 0


async def test_a_person_not_answering_then_one_hanging_up_in_the_briefing_each_leave_the_caller_with_the_bot(
        line: Line) -> None:
    """One call, handed over warm twice. The first person never answers: the bot is told, says its line for it,
    and the caller hears it. The second hangs up 0.25 s into the bot's 1.6 s briefing: the caller stays on the hold
    tones until the bot is interrupted, then hears its line for it, never the rest of the briefing; that person's
    leg, up from their answer to their hang-up, is priced on the session's telephony line."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=line.dispatcher.base_url, timeout=90) as api:
        caller_media = free_port_pair(2)
        to_caller = LoopbackUdp({caller_media})
        cued = CuedCaller()
        try:
            warm = await warm_call(api, line, "callee_rings", caller_media, cued, summary=None)
            session_id, unanswered, answered = warm.session_id, warm.answer, warm.at
            assert unanswered.status_code == 409, f"{unanswered.text}\n{line.edge.log()}"
            assert unanswered.json()["error"]["code"] == "person_unanswered", unanswered.text
            assert (await api.get(f"/sessions/{session_id}")).json()["status"] == "joined"  # still the bot's
            first_person = await warm.person
            assert first_person.returncode == 0, f"{first_person.output}\n{line.edge.log()}"  # rang, then CANCEL
            await heard_past(to_caller, caller_media, answered + 4.0)  # the window listened to below
            said_first = said(line, session_id)

            person = asyncio.create_task(asyncio.to_thread(run_callee, "callee_leaves_mid_briefing",
                                                           line.person_port, line.edge.workdir))
            left = await warm_once_answered(api, session_id, {"to": DESK, "summary": SUMMARY})
            back = time.time()
            await heard_past(to_caller, caller_media, back + 4.0)  # the window listened to below
            cued.cue()
            run, far = await warm.call, await person
        finally:
            cued.cue()
            to_caller.stop()
        assert run.returncode == 0, f"{run.output}\n{line.edge.log()}"  # its own BYE: the edge kept the call
        # The first: the bot was told, said its own line for it, and the caller heard it.
        assert said_first == [UNANSWERED_LINE]
        first_back = heard(to_caller, caller_media, answered, answered + 4.0)
        assert loudness(first_back) > 300 and share_at(first_back, FAILED_HZ) > 0.5, (
            f"{loudness(first_back):.0f} {share_at(first_back, FAILED_HZ):.2f}\n{line.edge.log()}")
        # The second.
        assert left.status_code == 409 and left.json()["error"]["code"] == "person_left", (
            f"{left.text}\n{line.edge.log()}")
        assert far.returncode == 0, f"{far.output}\n{line.edge.log()}"
        telephony = await bridged_line(api, session_id, line.edge)
        assert telephony["bridged"]["usd_per_minute"] == OUTBOUND_USD, telephony
        assert 0.0 < telephony["bridged"]["seconds"] < 3.0, telephony  # from their answer to their BYE
        assert said(line, session_id) == [UNANSWERED_LINE, SUMMARY, UNANSWERED_LINE]
        around = heard(to_caller, caller_media, back - 0.5, back + 4.0)
        assert share_at(around, BRIEFING_HZ) < 0.05, (
            f"the caller heard the briefing ({share_at(around, BRIEFING_HZ):.2f})\n{line.edge.log()}")
        assert share_at(around, FAILED_HZ) > 0.3, f"{share_at(around, FAILED_HZ):.2f}\n{line.edge.log()}"
        events = await ended_events(api, session_id)
        assert not [e for e in events if e["event"] == "transferred"]


async def test_a_caller_who_hangs_up_during_the_briefing_ends_the_persons_leg_which_is_priced(line: Line) -> None:
    """The caller hangs up while the bot briefs the person (an 8 s briefing): the person's call is hung up
    too, and their leg, from their answer to that end, is on the session's telephony line."""
    async with api_client(base_url=line.dispatcher.base_url, timeout=90) as api:
        warm = await warm_call(api, line, "callee_answers", free_port_pair(2), CuedCaller(),
                               scenario="call_warm_hangs_up", summary=f"{LONG_BRIEFING}{SUMMARY}")
        session_id, answer = warm.session_id, warm.answer
        run, _ = await warm.call, await warm.person  # its scenario hangs up by itself, never cued
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "call_over"), answer.text
        assert run.returncode == 0, f"{run.output}\n{line.edge.log()}"
        events = await ended_events(api, session_id)
        consulting = one(events, "transfer_consulting")["at"]  # the caller left during the briefing
        assert consulting < one(events, "caller_hung_up")["at"], [e["event"] for e in events]
        telephony = await bridged_line(api, session_id, line.edge)
        assert telephony["bridged"]["usd_per_minute"] == OUTBOUND_USD, telephony
        assert 0.0 < telephony["bridged"]["seconds"] < 8.0, telephony  # ended with the caller's BYE
        assert await wait_active_sessions(api, 0) == 0
