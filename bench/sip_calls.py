"""SIP calls through the edge, warm: how fast a call is answered and heard, and what the edge adds.

    uv run --all-groups python -m bench.sip_calls [--calls 10]     # needs root (a packet socket on lo) and SIPp

A real `python -m dispatcher` (MACHINES=local, one reserve bot running the parrot example) and
`python -m sipedge` in front of it, as tests/sip runs them; SIPp is the trunk, placing `--calls`
calls one after another, each on a warm reserve, with tests/sip/call_echo.xml (G.711 μ-law, the
caller speaks 2.5 s after the answer, hangs up 15 s later). Every SIP message and RTP packet
between SIPp and the edge is read off `lo` with the kernel's time stamp, so the figures are the
wire's, not SIPp's log:

1. INVITE → `180 Ringing`, INVITE → `200 OK`.
2. `200 OK` → the bot's first audio at the caller: the first RTP packet to SIPp louder than
   silence (the parrot's greeting tone).
3. The edge's own latency, caller → bot: each caller RTP packet into the edge → its audio sent
   on the call's stream to the dispatcher, split into PJSIP's part and Python's. The edge stamps
   the caller's frames when SIPEDGE_FRAME_TRACE is set (sipedge/frame_trace.py);
   bench/sip_edge_frames.py matches them with the packets.
4. The edge's CPU per call (/proc/<pid>/stat over each call, INVITE to the BYE's answer), and idle;
   with `--no-trace`, without the frame trace's writes (and without figure 3); each thread's share
   of it (/proc/<pid>/task, bench/thread_cpu.py) at the median.

Prints each call, then p50/p95 with N and the load average before and after; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.local_session import proc_usage
from bench.phone_calls import pct
from bench.sip_edge_frames import EdgeLatency, edge_latency, read_trace
from bench.thread_cpu import ThreadSampler
from sipedge.frame_trace import TRACE_ENV
from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.sip.conftest import NUMBER, run_edge
from tests.sip.loopback_rtp import RTP_HEADER, decode, rtp_payload
from tests.sip.loopback_udp import Datagram, LoopbackUdp, can_capture
from tests.sip.sipp import run_sipp
from tests.support.audio import BOT_AUDIO_RMS, rms
from tests.support.examples import PARROT
from tests.support.ports import free_port_pair
from tests.support.processes import run_dispatcher

IDLE_SECONDS = 5.0


@dataclass
class CallFigures:
    invite_to_180: float
    invite_to_200: float
    answer_to_first_audio: float | None
    edge: EdgeLatency
    cpu_seconds: float
    call_seconds: float  # INVITE to the BYE's answer
    threads: dict[str, float]  # each of the edge's threads' share of a core over the call (%)


def sip_time(datagrams: list[Datagram], sip_port: int, start: bytes, *, from_edge: bool) -> float | None:
    for datagram in datagrams:
        port = datagram.source_port if from_edge else datagram.destination_port
        if port == sip_port and datagram.payload.startswith(start):
            return datagram.at
    return None


def first_audio(datagrams: list[Datagram], media_port: int, after: float) -> float | None:
    """When the first RTP packet louder than silence reached the caller, at or after `after`."""
    for datagram in datagrams:
        if datagram.destination_port == media_port and datagram.at >= after and len(datagram.payload) > RTP_HEADER:
            samples = np.frombuffer(decode(rtp_payload(datagram.payload), "ulaw"), dtype=np.int16)
            if rms(samples) > BOT_AUDIO_RMS:
                return datagram.at
    return None


async def one_call(api: httpx.AsyncClient, edge_pid: int, sip_port: int, workdir: Path,
                   trace: Path | None) -> CallFigures:
    await wait_for_idle_bot(api)
    media_port = free_port_pair(2)  # SIPp's RTP and RTCP
    capture = LoopbackUdp({sip_port, media_port})
    _, cpu_before = proc_usage(edge_pid)
    threads = ThreadSampler(edge_pid)
    try:
        call = await asyncio.to_thread(run_sipp, "call_echo", NUMBER, sip_port, workdir, media_port=media_port)
        await asyncio.sleep(0.5)  # the last frames' trace lines
    finally:
        capture.stop()
    _, cpu_after = proc_usage(edge_pid)
    threads.stop()
    if call.returncode != 0:
        raise RuntimeError(f"SIPp's call failed:\n{call.output}")
    datagrams = list(capture.datagrams)
    invite = sip_time(datagrams, sip_port, b"INVITE ", from_edge=False)
    ringing = sip_time(datagrams, sip_port, b"SIP/2.0 180 ", from_edge=True)
    answer = sip_time(datagrams, sip_port, b"SIP/2.0 200 ", from_edge=True)  # the INVITE's: the BYE's comes last
    if invite is None or ringing is None or answer is None:
        raise RuntimeError(f"the capture lacks the INVITE, 180 or 200 ({len(datagrams)} datagrams)")
    ended = datagrams[-1].at if datagrams else answer
    audio = first_audio(datagrams, media_port, answer)
    stamps = [] if trace is None else read_trace(trace, invite, ended + 1)
    edge = edge_latency(datagrams, media_port, sip_port, stamps)
    return CallFigures(ringing - invite, answer - invite, None if audio is None else audio - answer, edge,
                       cpu_after - cpu_before, ended - invite,
                       threads.shares(ended - invite))


def _threads(figures: CallFigures) -> str:
    """The call's threads over 0.05 % of a core, by name/id (the event loop's is "loop")."""
    return ", ".join(f"{name} {share:.2f} %" for name, share in figures.threads.items() if share >= 0.05)


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {pct(values, 0.5) * 1000:.1f} ms, p95 {pct(values, 0.95) * 1000:.1f} ms (N={len(values)})"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--no-trace", action="store_true",
                        help="leave the edge's frame trace off: its CPU without the trace's writes, no edge latency")
    args = parser.parse_args()
    if (why := can_capture()) is not None or (why := None if shutil.which("sipp") else "SIPp is not installed"):
        print(f"cannot run: {why}")
        return 2
    load_before = os.getloadavg()
    calls: list[CallFigures] = []
    with tempfile.TemporaryDirectory(prefix="sip-calls-") as tmp:
        root = Path(tmp)
        trace = None if args.no_trace else root / "frames.trace"
        (root / "dispatcher").mkdir()
        (root / "edge").mkdir()
        env = {**phone_env(root), "BOT_FILE": str(PARROT / "bot.py"), "RESERVE_MIN_IDLE": "1", "LOG_LEVEL": "warning"}
        with run_dispatcher(root / "dispatcher", env) as dispatcher, \
                run_edge(dispatcher, root / "edge", env={} if trace is None else {TRACE_ENV: str(trace)}) as edge:
            _, idle_before = proc_usage(edge.process.pid)
            await asyncio.sleep(IDLE_SECONDS)
            _, idle_after = proc_usage(edge.process.pid)
            async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=30) as api:
                for number in range(args.calls):
                    figures = await one_call(api, edge.process.pid, edge.sip_port, edge.workdir, trace)
                    calls.append(figures)
                    audio = "none" if figures.answer_to_first_audio is None else \
                        f"{figures.answer_to_first_audio * 1000:.0f} ms"
                    print(f"call {number + 1}: 180 after {figures.invite_to_180 * 1000:.0f} ms, 200 after "
                          f"{figures.invite_to_200 * 1000:.0f} ms, first audio {audio} after the answer; edge "
                          f"{summary(figures.edge.whole)} over {figures.edge.packets} caller packets; CPU "
                          f"{figures.cpu_seconds:.2f} s in {figures.call_seconds:.1f} s ({_threads(figures)})",
                          flush=True)
    load_after = os.getloadavg()
    print()
    print(f"load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores; {len(calls)} calls")
    print("| what | measured | goal |")
    print("|---|---|---|")
    totals = EdgeLatency()
    for call in calls:
        totals.extend(call.edge)
    rows = [("INVITE → `180 Ringing`", [c.invite_to_180 for c in calls], None),
            ("INVITE → `200 OK`", [c.invite_to_200 for c in calls], 300.0),
            ("`200 OK` → the bot's first audio at the caller",
             [c.answer_to_first_audio for c in calls if c.answer_to_first_audio is not None], 250.0),
            ("the edge, caller → bot: an RTP packet in → the send that completed its audio on the stream",
             totals.whole, 20.0),
            ("… of which PJSIP (jitter buffer, media clock): the packet in → the completing frame handed to Python",
             totals.pjsip, None),
            ("… and Python: that hand-over → the frame's send returned", totals.python, None),
            ("the edge: an RTP packet in → the send that carried its first sample", totals.first, None)]
    for what, values, goal in rows:
        met = "" if goal is None or not values else \
            f"≤ {goal:.0f} ms: {'met' if pct(values, 0.95) * 1000 <= goal else 'not met'} at p95"
        print(f"| {what} | {summary(values)} | {met} |")
    cpu = [c.cpu_seconds / c.call_seconds * 100 for c in calls]
    idle = (idle_after - idle_before) / IDLE_SECONDS * 100
    traced = "off" if args.no_trace else "on"
    print(f"| the edge's CPU during a call (one at a time; the frame trace {traced}) | "
          f"p50 {pct(cpu, 0.5):.1f} %, p95 {pct(cpu, 0.95):.1f} % "
          f"of a core (N={len(cpu)}); idle {idle:.1f} % | |")
    print(f"caller packets found in the stream's audio: {len(totals.whole)} of {totals.packets} "
          "(silence and other repeated audio is left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
