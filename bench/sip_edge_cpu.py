"""The SIP edge's CPU per call with every call speaking both ways, where it goes, for A/B runs by turns.

    .venv/bin/python -m bench.sip_edge_cpu --calls 9 --workers 3 --seconds 30    # as bench/sip_capacity.py: SIPp

bench/sip_capacity.py's calls speak 4 s of their 15 (its figure is mostly silence one way); here each call
plays the soak's 60 s of speech (bench/sip_soak_call.xml) into the edge (`--workers` PJSIP workers behind
Kamailio) against bench/sip_capacity.py's fake dispatcher in a process of its own, which echoes each frame,
as a bot speaking all the time would. Once every call's stream is open and its speech has begun, the edge's
process tree is read over `--seconds` (/proc, each process and thread: bench/thread_cpu.py), and the same
over `--seconds` idle before the calls. Prints the CPU per call above idle, split by process kind (the
workers' threads by name, summed over the workers; Kamailio; the supervisor), and the load average."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.sip_capacity import start_edge, tree, write_config
from bench.sip_soak import SCENARIO, fake_dispatcher, long_speech
from bench.thread_cpu import thread_cpu
from tests.sip.conftest import NUMBER, write_g711_wav
from tests.support.ports import free_port, free_port_pair

CALLS_PER_SECOND = 10
SPEECH_AFTER_SECONDS = 3.0  # once the last call is up: its answer and its speech's start, on a busy host


def kind(pid: int, root: int) -> str:
    """What a process of the edge's tree is: the supervisor, Kamailio, the front's watcher, or a worker."""
    if pid == root:
        return "supervisor"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    if b"sipedge.front_watch" in command:
        return "watcher"
    program = command.split(b"\0")[0]
    return "kamailio" if program.endswith(b"kamailio") else "worker" if b"sipedge" in command else "other"


def by_thread(root: int) -> dict[str, float]:
    """CPU seconds of every thread of `root`'s tree, by "kind/thread name/tid"."""
    seconds: dict[str, float] = {}
    for pid in tree(root):
        what = kind(pid, root)
        with contextlib.suppress(OSError):
            for name, used in thread_cpu(pid).items():
                seconds[f"{what}/{name}/{pid}"] = used
    return seconds


def shares(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """% of a core by "kind/thread" (the thread's name, its tid dropped; summed over processes)."""
    out: dict[str, float] = defaultdict(float)
    for key, used in after.items():
        what, name, _pid = key.split("/", 2)
        name = name.split("/")[0]
        if what == "worker" and name != "loop":
            name = name.rstrip("0123456789") or "pj"  # PJSIP's threads: one name for all workers'
        out[f"{what}/{name}"] += (used - before.get(key, 0.0)) / seconds * 100
    return dict(out)


async def window(root: int, seconds: float) -> dict[str, float]:
    before, started = by_thread(root), time.monotonic()
    await asyncio.sleep(seconds)
    return shares(before, by_thread(root), time.monotonic() - started)


async def measure(calls: int, workers: int, seconds: float, deflate: bool, profile: Path | None) -> None:
    os.environ["LOG_LEVEL"] = "INFO"  # the edge logs each call's answer and end: the calls up are counted
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_g711_wav(folder / "speech60_ulaw.wav", long_speech(59.5), "ulaw")
        with fake_dispatcher(folder, deflate) as fake:
            sip_port = free_port(socket.SOCK_DGRAM)
            port = int(fake.base_url.rsplit(":", 1)[1])
            edge = await asyncio.to_thread(start_edge, write_config(folder, port, sip_port, workers),
                                           folder / "edge.log")
            try:
                await asyncio.sleep(5)
                idle = await window(edge.pid, seconds)
                load_before = os.getloadavg()[0]
                sipp = await asyncio.create_subprocess_exec(
                    "sipp", "-sf", str(SCENARIO), "-s", NUMBER, "-i", "127.0.0.1", "-p", "0", f"127.0.0.1:{sip_port}",
                    "-m", str(calls), "-l", str(calls), "-r", str(CALLS_PER_SECOND), "-mp", str(free_port_pair(2)),
                    "-nostdin", "-timeout", "120", cwd=folder,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                await asyncio.sleep(calls / CALLS_PER_SECOND + SPEECH_AFTER_SECONDS)
                perf = None if profile is None else await asyncio.create_subprocess_exec(
                    "perf", "record", "-F", "499", "-g", "-o", str(profile), "-p",
                    ",".join(str(pid) for pid in tree(edge.pid) if kind(pid, edge.pid) == "worker"),
                    "--", "sleep", str(seconds), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                busy = await window(edge.pid, seconds)
                if perf is not None:
                    await perf.wait()
                load_after = os.getloadavg()[0]
                log = (folder / "edge.log").read_text(errors="replace")  # the calls' lines, up to the window's end
                sipp.terminate()
                await sipp.wait()
            finally:
                edge.terminate()
                edge.wait(30)
    answered, ended = log.count(" answered (session "), log.count(" ended by the ")
    idle_all, busy_all = sum(idle.values()), sum(busy.values())
    print(f"edge: {workers} workers, {calls} calls, {seconds:g} s windows, the fake's streams "
          f"{'with' if deflate else 'without'} permessage-deflate; {os.cpu_count()} cores, "
          f"load {load_before:.1f} -> {load_after:.1f}; {answered} calls answered, {ended} ended by the window's end")
    print(f"  idle {idle_all:.1f} % of a core, busy {busy_all:.1f} %: per call above idle "
          f"{(busy_all - idle_all) / calls:.2f} %")
    for name in sorted(busy, key=lambda n: -busy[n]):
        print(f"    {name:28s} idle {idle.get(name, 0.0):6.2f} %  busy {busy[name]:6.2f} %  "
              f"per call {(busy[name] - idle.get(name, 0.0)) / calls:5.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fake-deflate", action="store_true", help="the fake's streams take permessage-deflate, "
                        "as bench/sip_capacity.py's did before 2026-12-03 (the dispatcher's refuse it)")
    parser.add_argument("--perf", type=Path, help="`perf record -g` of the workers over the calls' window, to this "
                        "file (its own cost then counts in the figures: profile and measure in separate runs)")
    args = parser.parse_args()
    asyncio.run(measure(args.calls, args.workers, args.seconds, args.fake_deflate, args.perf))


if __name__ == "__main__":
    main()
