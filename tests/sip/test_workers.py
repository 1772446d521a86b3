"""One edge with several PJSIP workers behind its Kamailio front holds more calls at once than one
PJSIP process can (3): SIPp places CALLS calls together through the edge's one SIP port, to a real
local dispatcher whose bots are bench/phone_echo_host.py (the channel, `media.attach` and the
Exotel stream a real bot host opens, each frame sent straight back; no Pipecat). Each call is answered
once its bot has joined, hears its own words back, and its session ends at the caller's BYE."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sipedge.front_config import PROBE_SECONDS
from sipedge.worker_place import WORKER_VARIABLE
from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions
from tests.phone.test_parrot_websocket import voiced
from tests.sip.caller_cue import CuedCaller
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.loopback_rtp import LoopbackRtp, can_capture
from tests.sip.raw_sip import GOOD_SDP
from tests.sip.sipp import run_sipp
from tests.sip.test_calls import (
    CUE_MARGIN_SECONDS,
    answered_at,
    answered_sipp_call,
    cued_once_heard,
    timeline,
    waits_from_answer,
    words_came_back,
)
from tests.support.audio import Pcm, echo_similarity
from tests.support.http_client import api_client
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, three PJSIP workers, six bot processes

ECHO_HOST = Path(__file__).resolve().parents[2] / "bench" / "phone_echo_host.py"
# More than one worker holds (3 calls each): the front's least-loaded choice (ds_select_dst's algorithm 10) gives
# each of the three workers one of them at least, the restarted one too.
CALLS = 4
WORKERS = 3
STRANGER = "127.0.0.2"  # loopback too, but no trunk allows it
FLOOD_PER_SECOND = 300  # from before a call until it ended


@pytest.fixture(scope="module")
def echo_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "LOCAL_BOT_COMMAND": f"{sys.executable} {ECHO_HOST}",
           "RESERVE_MIN_IDLE": "0", "MAX_CONCURRENT_SESSIONS": str(CALLS + 4)}
    with run_dispatcher(tmp_path_factory.mktemp("sip-echo-dispatcher"), env) as running:
        yield running


@pytest.fixture(scope="module")
def fronted_edge(echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("sip-fronted-edge"), workers=WORKERS) as running:
        yield running


def worker_pids(edge: EdgeProcess) -> dict[int, int]:
    """The edge's workers now: their index → their process id (the edge's children that are workers)."""
    found: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        index = next((v.split(b"=", 1)[1] for v in environ if v.startswith(WORKER_VARIABLE.encode() + b"=")), None)
        if parent == edge.process.pid and index is not None:
            found[int(index)] = int(stat.parent.name)
    return found


async def wait_for_workers(edge: EdgeProcess, workers: int = WORKERS, timeout: float = 60.0) -> dict[int, int]:
    """The process ids of the edge's `workers` once each is up and Kamailio's probes have found it answering."""
    for _ in range(int(timeout * 10)):
        pids = worker_pids(edge)
        ready = len(re.findall(r"sipedge: worker \d+ ready", edge.log()))
        restarted = len(re.findall(r"sipedge: worker \d+ exited", edge.log()))
        if len(pids) == workers and ready == workers + restarted:
            await asyncio.sleep(PROBE_SECONDS * 2)  # the front's next probe finds a new one answering
            return pids
        await asyncio.sleep(0.1)
    raise AssertionError(f"the edge's workers are not all up\n{edge.log()[-6000:]}")


def invite_cancel_flood(target_port: int, source: str, until: threading.Event, per_second: int) -> tuple[int, float]:
    """INVITEs each followed at once by its CANCEL (same transaction), `per_second` pairs a second
    from `source`, as a scanner sends them, until `until` is set; the answers are not read. Returns the pairs
    sent and the seconds they took."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    port = sock.getsockname()[1]
    sent, start, elapsed = 0, time.monotonic(), 0.0
    try:
        while not until.is_set():
            elapsed = time.monotonic() - start
            if sent > elapsed * per_second:
                time.sleep(1 / per_second)
                continue
            call_id, branch = f"{secrets.token_hex(8)}@{source}", f"z9hG4bK{secrets.token_hex(8)}"
            head = (f"sip:{NUMBER}@127.0.0.1:{target_port} SIP/2.0\r\nVia: SIP/2.0/UDP {source}:{port};branch={branch}"
                    f"\r\nMax-Forwards: 70\r\nFrom: <sip:scanner@{source}>;tag={secrets.token_hex(4)}\r\n"
                    f"To: <sip:{NUMBER}@127.0.0.1>\r\nCall-ID: {call_id}\r\n")
            sdp = GOOD_SDP.encode()
            invite = (f"INVITE {head}CSeq: 1 INVITE\r\nContact: <sip:scanner@{source}:{port}>\r\n"
                      f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n").encode() + sdp
            cancel = f"CANCEL {head}CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n".encode()
            sock.sendto(invite, ("127.0.0.1", target_port))
            sock.sendto(cancel, ("127.0.0.1", target_port))
            sent += 1
    finally:
        sock.close()
    return sent, elapsed


# This test first: the module's fixtures (the dispatcher, Kamailio, three workers) start within the first test's
# timeout, and it is the lighter of the two.
async def test_an_invite_cancel_flood_leaves_the_edge_serving_its_trunk(
    echo_dispatcher: DispatcherProcess, fronted_edge: EdgeProcess,
) -> None:
    """The flood runs from before the trunk's call to its end: the call is answered and its caller hears its words
    back through it, hanging up once it has (test_calls.cued_once_heard)."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=echo_dispatcher.base_url, timeout=30) as api:
        await wait_for_workers(fronted_edge)
        exits = len(re.findall(r"exited \(", fronted_edge.log()))
        call_over = threading.Event()
        flooding = asyncio.create_task(asyncio.to_thread(
            invite_cancel_flood, fronted_edge.sip_port, STRANGER, call_over, FLOOD_PER_SECOND))
        try:
            call, capture = await cued_once_heard(fronted_edge, "call_echo", echoed_above=0.6)
        finally:
            call_over.set()
        sent, seconds = await flooding
        assert sent >= seconds * FLOOD_PER_SECOND * 0.5, (sent, seconds)  # the flood really was hundreds a second
        assert call.statuses()[-1] == 200  # answered, and its BYE too
        assert words_came_back(capture.pcm("ulaw")) > 0.6, fronted_edge.log()[-6000:]
        assert fronted_edge.process.poll() is None
        assert len(re.findall(r"exited \(", fronted_edge.log())) == exits, fronted_edge.log()[-6000:]
        assert await wait_active_sessions(api, 0) == 0


async def test_a_dead_workers_call_ends_its_session_it_is_started_again_and_the_edge_holds_more_calls_than_one(
    echo_dispatcher: DispatcherProcess, fronted_edge: EdgeProcess,
) -> None:
    """One story, so that CALLS bots start once: a worker killed under its call, started again, then CALLS
    calls at once, more than one worker holds, each heard and ended (the restarted worker taking its share)."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=echo_dispatcher.base_url, timeout=30) as api:
        before = await wait_for_workers(fronted_edge)
        cued = CuedCaller()
        answered_by, calling = await answered_sipp_call(fronted_edge, "call_until_cued", ANSWERED_BY,
                                                        media_port=free_port_pair(2), cued=cued)
        holder = int(answered_by)
        try:
            os.kill(before[holder], signal.SIGKILL)  # no BYE can come from it
            # Its call's stream closed with it: the session ended before the caller's BYE.
            assert await wait_active_sessions(api, 0, timeout=10) == 0, fronted_edge.log()[-6000:]
        finally:
            cued.cue()  # the caller hangs up
        # The caller's BYE then reaches no worker that knows the call: no matter; it ends the call's dialog
        # in the front, which counted it on the dead worker.
        await calling
        after = await wait_for_workers(fronted_edge)
        assert after[holder] != before[holder]
        assert re.search(rf"worker {holder} exited \(-9\); starting it again", fronted_edge.log())
        await many_calls_at_once(api, fronted_edge, holder)


async def many_calls_at_once(api: httpx.AsyncClient, edge: EdgeProcess, restarted: int) -> None:
    """CALLS calls placed together through the edge's one SIP port: all held at once, each with its bot, each
    answered and its BYE too, on more than one worker (`restarted` among them), each caller hearing its words."""
    media_port = free_port_pair(2 * CALLS)  # SIPp's first call's RTP port; the others follow it
    seen = len(edge.log())
    # Each call is cued by its Call-ID (SIPp's -cid_str numbers them from 1: %u) once all are held, each is
    # speaking (then waiting for its cue) and the first one's words came back; else each hangs up by itself.
    sip_port, tag = free_port(socket.SOCK_DGRAM), secrets.token_hex(8)
    cues = [CuedCaller(sip_port, f"many-{n}-{tag}@127.0.0.1") for n in range(1, CALLS + 1)]
    capture = LoopbackRtp(media_port, range(media_port, media_port + 2 * CALLS))
    uncued = waits_from_answer("call_echo") - CUE_MARGIN_SECONDS
    try:
        calling = asyncio.create_task(asyncio.to_thread(
            run_sipp, "call_echo", NUMBER, edge.sip_port, edge.workdir, media_port=media_port, calls=CALLS,
            sip_port=sip_port, call_id=f"many-%u-{tag}@127.0.0.1"))
        held = await wait_active_sessions(api, CALLS, timeout=60)  # all at once, each with its bot
        while held == CALLS and not calling.done():
            answered = [at for cue in cues if (at := answered_at(edge, cue.call_id)) is not None]
            if answered and time.time() >= min(answered) + uncued:  # the first answered may go on by itself
                break
            # Each caller speaking (its RTP port, of a pair, sent): past its scenario's pause, waiting for its cue.
            speaking = {port for port in capture.senders() if (port - media_port) % 2 == 0}
            if len(answered) == CALLS and len(speaking) == CALLS and words_came_back(capture.pcm("ulaw")) > 0.6:
                for cue in cues:
                    cue.cue()
                break
            await asyncio.sleep(0.25)
        calls = await calling
        capture.wait_quiet()
    finally:
        capture.stop()
    log = edge.log()[seen:]
    assert held == CALLS, log
    assert calls.returncode == 0, f"{calls.output}\n{log}"
    # Each INVITE answered, each BYE too (once each: on a loaded host the edge's 200 to a BYE SIPp sent
    # again after 500 ms comes twice).
    assert len(calls.answered(200)) == 2 * CALLS, sorted(calls.answered(200))
    sessions = re.findall(r"answered \(session (\w+)\)", log)
    assert len(set(sessions)) == CALLS, log
    # Every worker took calls: one alone could not hold them all; the least loaded leaves none out.
    ports = set(re.findall(r"^Contact: <sip:[^>]*127\.0\.0\.1:(\d+)", calls.messages, re.MULTILINE))
    assert len(ports) >= 2, ports
    assert str(restarted) in ANSWERED_BY.findall(log), log
    # The caller heard its own words come back through the Exotel stream and the edge.
    heard = np.frombuffer(capture.pcm("ulaw"), dtype=np.int16)
    speech = Pcm(np.frombuffer(speech_8k(), dtype=np.int16), 8000)
    assert echo_similarity(voiced(speech), heard, 8000) > 0.6
    assert await wait_active_sessions(api, 0) == 0
    for session_id in sessions:
        assert "machine_ended" in await timeline(api, session_id)


ANSWERED_BY = re.compile(r"\[worker (\d+)\] sipedge: call \S+ answered \(session \w+\)")  # which worker
