"""The SIP edge's soak: `--calls` 60-second calls kept up at once for `--minutes`, and every one counted.

    .venv/bin/python -m bench.sip_soak --minutes 30     # needs SIPp, Kamailio, root (a packet socket on lo)
    .venv/bin/python -m bench.sip_soak --minutes 30 --fake-dispatcher   # the edge alone: no dispatcher, no bots

SIPp is the trunk (bench/sip_soak_call.xml): `--calls` new calls a minute, at most `--calls` at once
(-l), for `--minutes` plus one (the first minute only ramps up), each playing 60 s of G.711 μ-law
speech as RTP and then hanging up itself. The edge (`python -m sipedge`, Kamailio in front of
`--workers` PJSIP workers, 3 calls each) hands them to a real `python -m dispatcher` whose bots are
bench/phone_echo_host.py: the channel, `media.attach` and the Exotel stream of a real bot host, each
frame sent straight back, no Pipecat. Each minute: the edge's process tree's CPU from /proc (% of a
core; per call, above idle, by the calls up on average), its RSS, the dispatcher's and its bots'
CPU, the load average, and an echo check: for ECHO_WINDOW seconds the RTP on lo is read and each
call that spoke through it must have heard its speech back. After SIPp ends, each session's end
(its `sip_ended` event on the dispatcher's timeline) is counted by the minute it came in. With
`--fake-dispatcher`, bench/sip_capacity.py's fake (in a process of its own) echoes instead.

What counts as lost: bench/sip_soak_tally.py. Prints a table a minute and the totals; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.sip_capacity import CLOCK_TICKS, FakeDispatcher, cpu_ticks, rss_mb, tree
from bench.sip_soak_tally import (
    ANSWER_BOUND_SECONDS,
    HEADER,
    MINUTE,
    Call,
    EchoCheck,
    Minute,
    echo_check,
    read_calls,
    row,
)
from sipedge.front_config import PROBE_SECONDS
from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions
from tests.sip import conftest as sip_tests
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge, write_g711_wav
from tests.sip.loopback_udp import LoopbackUdp, can_capture
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "bench" / "sip_soak_call.xml"
ECHO_HOST = ROOT / "bench" / "phone_echo_host.py"
SPEECH_SECONDS = 59.5  # the speech played; the BYE comes at 60 s
ECHO_AT, ECHO_WINDOW = 25.0, 4.0  # seconds into each minute, and how long the echo check listens
DRAIN_SECONDS = 120.0  # after SIPp's end, every session has ended within this
# The edge's start with its workers, as a safety net: at a load average of 31 on 2 cores it had not
# printed a line after the tests' 60 s (its 18 workers each import PJSIP).
EDGE_READY_SECONDS = 600.0


async def serve_fake(deflate: bool = False) -> None:
    """bench/sip_capacity.py's fake dispatcher, in a process of its own (so the bench's own work never
    delays its streams): prints its port, serves until SIGTERM, then prints its sessions' last status."""
    async with FakeDispatcher(deflate) as fake:
        print(fake.port, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print(json.dumps(dict(Counter(fake.sessions.values()))), flush=True)


@contextmanager
def fake_dispatcher(folder: Path, deflate: bool = False) -> Iterator[DispatcherProcess]:
    """`python -m bench.sip_soak --serve-fake` once it listens; its last line, after SIGTERM, is its
    sessions' last status counted. `deflate`: its streams take permessage-deflate (a real dispatcher's refuse it)."""
    log_path = folder / "fake.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "bench.sip_soak", "--serve-fake",
                                    *(["--fake-deflate"] if deflate else [])], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    port = process.stdout.readline().decode().strip()
    if not port.isdigit():
        process.kill()
        raise SystemExit(f"the fake dispatcher did not start:\n{log_path.read_text(errors='replace')}")
    try:
        yield DispatcherProcess(process, f"http://127.0.0.1:{port}", log_path)
    finally:
        process.terminate()
        (folder / "fake.sessions").write_bytes(process.communicate(timeout=30)[0])


def long_speech(seconds: float) -> bytes:
    """The speech fixture (8 kHz, 16-bit) repeated to `seconds`."""
    once = speech_8k()
    wanted = int(seconds * 8000) * 2
    return (once * (wanted // len(once) + 1))[:wanted]


async def workers_ready(edge: EdgeProcess, workers: int, timeout: float = EDGE_READY_SECONDS) -> None:
    """Until every worker has said it is ready and Kamailio's probes have found them answering."""
    deadline = time.monotonic() + timeout
    while len(re.findall(r"sipedge: worker \d+ ready", edge.log())) < workers:
        if time.monotonic() > deadline or edge.process.poll() is not None:
            raise SystemExit(f"the edge's workers did not all start:\n{edge.log()[-4000:]}")
        await asyncio.sleep(0.5)
    await asyncio.sleep(PROBE_SECONDS * 2)


def cpu_seconds(root: int) -> float:
    """The CPU seconds of `root`'s tree, with those of its children that ended and were reaped
    (a bot's, a restarted worker's), which /proc keeps as the parent's cutime and cstime."""
    try:
        fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
        reaped = int(fields[13]) + int(fields[14])
    except (OSError, IndexError, ValueError):
        reaped = 0
    return (cpu_ticks(tree(root)) + reaped) / CLOCK_TICKS


class Sampler:
    """The edge's and the dispatcher's process trees' CPU since the last sample, in % of one core."""

    def __init__(self, edge: int, dispatcher: int) -> None:
        self.edge, self.dispatcher = edge, dispatcher
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        return time.monotonic(), cpu_seconds(self.edge), cpu_seconds(self.dispatcher)

    def take(self) -> tuple[float, float, float]:
        """(seconds since the last sample, the edge's %, the dispatcher's and its bots' %)."""
        now = self._read()
        seconds = now[0] - self._last[0]
        edge, rest = (now[1] - self._last[1]) / seconds * 100, (now[2] - self._last[2]) / seconds * 100
        self._last = now
        return seconds, edge, rest


async def until(at: float, sipp: asyncio.subprocess.Process) -> bool:
    """Sleeps until epoch second `at`; False if SIPp ended first."""
    try:
        await asyncio.wait_for(sipp.wait(), max(0.0, at - time.time()))
    except TimeoutError:
        return True
    return False


async def end_reasons(base_url: str, sessions: list[str], zero: float) -> dict[int, Counter[str]]:
    """Each session's end as the edge told the dispatcher (`by/how` of `sip_ended`), by minute."""
    found: dict[int, Counter[str]] = {}
    limit = asyncio.Semaphore(8)

    async def one(client: httpx.AsyncClient, session: str) -> None:
        async with limit:
            answer = await client.get(f"/sessions/{session}/timeline")
        events: list[dict[str, Any]] = answer.json().get("events", []) if answer.status_code == 200 else []
        ended = next((e for e in events if e["event"] == "sip_ended"), None)
        reason = f"{ended.get('by')}/{ended.get('how')}" if ended else "no sip_ended"
        if any(e["event"] in ("failed", "error") for e in events):
            reason += " +failed"
        at = ended["at"] if ended else events[-1]["at"] if events else zero
        found.setdefault(int((at - zero) // MINUTE), Counter())[reason] += 1

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        await asyncio.gather(*(one(client, session) for session in sessions))
    return found


@dataclass
class Ends:
    left: float  # sessions still active DRAIN_SECONDS after SIPp's end
    by_minute: dict[int, Counter[str]]


async def real_ends(dispatcher: DispatcherProcess, edge_log: str, zero: float) -> Ends:
    async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=30) as api:
        left = await wait_active_sessions(api, 0, timeout=DRAIN_SECONDS)
    sessions = sorted(set(re.findall(r"answered \(session (\w+)\)", edge_log)))
    return Ends(left, await end_reasons(dispatcher.base_url, sessions, zero))


def fake_ends(folder: Path) -> Ends:
    """The fake's sessions by their last status (it keeps no timeline), all in the last row."""
    statuses: dict[str, int] = json.loads(read_if_any(folder / "fake.sessions") or "{}")
    return Ends(sum(n for status, n in statuses.items() if status != "ended"),
                {sys.maxsize: Counter({f"fake: {status}": n for status, n in statuses.items()})})


async def soak(minutes: int, calls: int, workers: int, fake: bool, keep: Path | None = None) -> None:
    if shutil.which("sipp") is None:
        raise SystemExit("SIPp is not installed (Debian's sip-tester)")
    no_capture = can_capture()
    with tempfile.TemporaryDirectory() if keep is None else nullcontext(str(keep)) as scratch:
        folder = Path(scratch)
        env = {**phone_env(folder), "LOCAL_BOT_COMMAND": f"{sys.executable} {ECHO_HOST}",
               "MAX_CONCURRENT_SESSIONS": str(calls + 20)}
        sip_tests.READY_SECONDS = EDGE_READY_SECONDS  # run_edge's deadline, read when it starts the edge
        with ExitStack() as stack:
            dispatcher = stack.enter_context(fake_dispatcher(folder) if fake else run_dispatcher(folder, env))
            edge = stack.enter_context(run_edge(dispatcher.base_url, folder, workers=workers))
            write_g711_wav(folder / "speech60_ulaw.wav", long_speech(SPEECH_SECONDS), "ulaw")
            await workers_ready(edge, workers)
            sampler = Sampler(edge.process.pid, dispatcher.process.pid)
            await asyncio.sleep(10)
            _, idle_cpu, idle_rest = sampler.take()
            idle_rss = rss_mb(tree(edge.process.pid))
            zero, rows = time.time(), await run_calls(folder, edge, sampler, calls, minutes, no_capture)
            ends = None if fake else await real_ends(dispatcher, edge.log(), zero)
            edge_log = edge.log()
        ends = ends or fake_ends(folder)
        screen_text, errors = read_if_any(folder / "sipp.screen"), read_if_any(folder / "errors.log")
        tally = read_calls(folder / "calls.log", zero)
    for minute in rows:
        minute.ends = ends.by_minute.pop(minute.index, Counter())
    print(f"SIP soak: {calls} calls at once, 60 s each, {minutes} min (+1 ramping up); edge with {workers} PJSIP "
          f"workers behind Kamailio; " + ("bench/sip_capacity.py's fake dispatcher (echoing each frame), in a "
                                          "process of its own" if fake else "a real dispatcher, echo bots"))
    report(rows, list(tally.values()), zero, (idle_cpu, idle_rest, idle_rss), ends, screen_text, errors, edge_log,
           no_capture)


async def run_calls(folder: Path, edge: EdgeProcess, sampler: Sampler, calls: int, minutes: int,
                    no_capture: str | None) -> list[Minute]:
    """SIPp's calls, sampled a minute at a time until SIPp ends."""
    media_port, total = free_port_pair(2), calls * (minutes + 1)
    zero = time.time()
    sipp = await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(SCENARIO), "-s", NUMBER, "-i", "127.0.0.1", "-p", "0", f"127.0.0.1:{edge.sip_port}",
        "-m", str(total), "-l", str(calls), "-r", str(calls), "-rp", "60000", "-mp", str(media_port),
        "-nostdin", "-recv_timeout", "60000", "-timeout", str(int((minutes + 4) * MINUTE)),
        "-trace_logs", "-log_file", str(folder / "calls.log"), "-trace_err", "-error_file",
        str(folder / "errors.log"), "-trace_screen", "-screen_file", str(folder / "sipp.screen"), cwd=folder,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    rows: list[Minute] = []
    sampler.take()
    running = True
    while running:
        index = len(rows)
        start = zero + index * MINUTE
        echo: EchoCheck | None = None
        running = await until(start + ECHO_AT, sipp)
        if running and no_capture is None:
            capture = LoopbackUdp({media_port})
            running = await until(start + ECHO_AT + ECHO_WINDOW, sipp)
            capture.stop()
            echo = echo_check(list(capture.datagrams), media_port, read_calls(folder / "calls.log", zero),
                              start + ECHO_AT)
        running = running and await until(start + MINUTE, sipp)
        seconds, edge_cpu, rest_cpu = sampler.take()
        rows.append(Minute(index, seconds, edge_cpu, rest_cpu, rss_mb(tree(edge.process.pid)),
                           os.getloadavg()[0], echo))
        print(f"minute {index + 1}: edge {edge_cpu:.0f} % of a core, load {os.getloadavg()[0]:.2f}",
              file=sys.stderr, flush=True)
    return rows


RECEIVED = re.compile(r"received '(SIP/2\.0 \d{3} [^\r\n]*|[A-Z]+ )")  # what an aborted call got instead
SIPP_OWN = re.compile(r"[^\n]*(?:timed out|timeout|Max-UDP)[^\n]*", re.IGNORECASE)


def sipp_failures(errors: str) -> Counter[str]:
    """What SIPp's error log says ended its failed calls: the unexpected message each call received,
    or SIPp's own words (a timeout, a retransmission limit)."""
    found = Counter(f"received {first_line.strip()}" for first_line in RECEIVED.findall(errors))
    found.update(line.split(": ", 1)[-1][:100] for line in SIPP_OWN.findall(errors))
    return found


def read_if_any(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def sipp_total(screen: str, name: str) -> str:
    """A cumulative count from SIPp's last screen ("Successful call", "Failed call")."""
    lines = [line for line in screen.splitlines() if line.startswith(f"  {name}")]
    return lines[-1].split("|")[-1].strip() if lines else "?"


def report(rows: list[Minute], calls: list[Call], zero: float, idle: tuple[float, float, float], ends: Ends,
           screen: str, errors: str, edge_log: str, no_capture: str | None) -> None:
    idle_cpu, idle_rest, idle_rss = idle
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} cores; load average at the end {load}")
    print(f"lost: not answered, answered later than {ANSWER_BOUND_SECONDS:g} s, not ended by its own BYE, or "
          f"silent in an echo check ({ECHO_WINDOW:g} s of RTP read at {ECHO_AT:g} s into each minute)")
    if no_capture:
        print(f"no echo checks: {no_capture}")
    print(f"idle: edge {idle_cpu:.1f} % of a core, RSS {idle_rss:.0f} MB; dispatcher {idle_rest:.1f} %")
    print(HEADER)
    for minute in rows:
        print(row(minute, calls, zero, idle_cpu))
    answered = [c for c in calls if c.answered is not None]
    waits = sorted(c.answered - c.invited for c in answered if c.answered is not None)
    checks = [m.echo for m in rows if m.echo is not None]
    print(f"total: {len(calls)} calls placed, {len(answered)} answered ({sum(c.late for c in calls)} late), "
          f"{sum(c.ended is not None for c in calls)} ended by their own BYE, "
          f"{sum(c.lost for c in calls)} lost; echo checks: {sum(e.talking for e in checks)} calls checked, "
          f"{sum(len(e.silent) for e in checks)} silent")
    if waits:
        print(f"INVITE → 200 OK: p50 {waits[len(waits) // 2]:.2f} s, p95 {waits[int(len(waits) * 0.95)]:.2f} s, "
              f"max {waits[-1]:.2f} s")
    print(f"SIPp: successful calls {sipp_total(screen, 'Successful call')}, failed {sipp_total(screen, 'Failed call')}")
    starved = errors.count("watchdog timer")
    if starved:
        print(f"SIPp's watchdog tripped {starved} times: SIPp itself waited for a CPU (its rate and timing slipped)")
    for what, count in sipp_failures(errors).most_common(6):
        print(f"  SIPp: {count} × {what}")
    for line in [line for line in edge_log.splitlines() if "refused" in line or "exited (" in line][:6]:
        print(f"  edge: {line.strip()[:160]}")
    if ends.by_minute:
        print(f"sessions' ends in no row (after the last, or the fake's, which keeps no time): "
              f"{dict(sum(ends.by_minute.values(), Counter()))}")
    print(f"dispatcher: sessions still active {DRAIN_SECONDS:g} s after SIPp's end: {ends.left:g}")
    rss = [m.edge_rss_mb for m in rows]
    print(f"edge RSS: idle {idle_rss:.0f} MB, first minute {rss[0]:.0f} MB, last {rss[-1]:.0f} MB, "
          f"most {max(rss):.0f} MB" if rss else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--workers", type=int, default=18, help="3 calls each; one spare for a call still closing")
    parser.add_argument("--fake-dispatcher", action="store_true",
                        help="bench/sip_capacity.py's fake dispatcher instead of a real one and its bots")
    parser.add_argument("--keep", type=Path, help="a folder for the run's files (the edge's, SIPp's and the "
                        "dispatcher's logs), kept after it; by default they go with a temporary folder")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)  # the fake's own process
    parser.add_argument("--fake-deflate", action="store_true", help=argparse.SUPPRESS)  # bench/sip_edge_cpu.py's A/B
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve_fake(args.fake_deflate) if args.serve_fake
                else soak(args.minutes, args.calls, args.workers, args.fake_dispatcher, args.keep))


if __name__ == "__main__":
    main()
