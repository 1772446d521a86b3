"""How many calls one SIP edge (`python -m sipedge`) holds at once, and its CPU and memory per call.

SIPp places `--calls` calls together (`-l`), each playing G.711 μ-law speech for 15 s as RTP (the
scenario tests/sip/call_echo.xml, 17.5 s a call) through the edge's one SIP port. Behind the edge
is a local fake of the dispatcher (POST /start, the call's Exotel stream, GET /sessions/{id}),
whose stream sends every media frame straight back, so the edge carries both directions of audio
for every call and what is measured is the edge alone, not bots. The edge's CPU is its whole
process tree (the supervisor, Kamailio, the workers), sampled from /proc while every call is up.

    .venv/bin/python -m bench.sip_capacity --calls 50 --workers 17
    .venv/bin/python -m bench.sip_capacity --calls 8 --workers 1    # one PJSIP process: 3 at most
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import WSMsgType, web

from tests.phone.conftest import speech_8k
from tests.sip.conftest import NUMBER, write_g711_wav
from tests.support.ports import free_port, free_port_pair

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "sip" / "call_echo.xml"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 5.0
CALLS_PER_SECOND = 10  # SIPp's rate: the last call starts calls / 10 s after the first
UP_SECONDS = 8.0  # after the last call started, all are up by then or they never will be
CLOSE_SECONDS = 20.0  # a call's stream closes within this of its BYE, or it counts as left open


class FakeDispatcher:
    """The dispatcher's side of a SIP call, with an echo where the bot would be. Its streams refuse
    permessage-deflate as the dispatcher's do (dispatcher/serving/server.py); `deflate`: they take it."""

    def __init__(self, deflate: bool = False) -> None:
        self.port = free_port()
        self._deflate = deflate
        self.open_streams = 0
        self.most_streams = 0
        self.streams = 0
        self.wanted = 1_000_000  # the open streams that set all_open
        self.all_open = asyncio.Event()
        self.all_closed = asyncio.Event()  # set each time the last open stream closes
        self._sessions: dict[str, str] = {}  # session → status
        self._tokens: dict[str, str] = {}  # token → session
        app = web.Application()
        app.router.add_post("/start", self._start)
        app.router.add_get("/ws/exotel/{token}", self._stream)
        app.router.add_get("/sessions/{session}", self._status)
        app.router.add_delete("/sessions/{session}", self._stop)
        self.runner = web.AppRunner(app, access_log=None)

    @property
    def sessions(self) -> dict[str, str]:
        """Each session's status now: starting, joined (its stream open) or ended."""
        return self._sessions

    async def __aenter__(self) -> FakeDispatcher:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    async def _start(self, request: web.Request) -> web.Response:
        session, token = uuid.uuid4().hex[:24], uuid.uuid4().hex
        self._sessions[session], self._tokens[token] = "starting", session
        return web.json_response({"wsUrl": f"ws://127.0.0.1:{self.port}/ws/exotel", "token": token,
                                  "sessionId": session})

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        session = self._tokens.pop(request.match_info["token"], None)
        socket = web.WebSocketResponse(compress=self._deflate)
        await socket.prepare(request)
        if session is None:
            await socket.close()
            return socket
        self._sessions[session] = "joined"
        self.open_streams += 1
        self.all_closed.clear()
        self.streams += 1
        self.most_streams = max(self.most_streams, self.open_streams)
        if self.open_streams >= self.wanted:
            self.all_open.set()
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT and json.loads(message.data).get("event") == "media":
                    with contextlib.suppress(ConnectionResetError):  # the edge closed it meanwhile
                        await socket.send_str(message.data)  # the bot's voice: the caller's own
        finally:
            self.open_streams -= 1
            if self.open_streams == 0:
                self.all_closed.set()
            self._sessions[session] = "ended"
        return socket

    async def _status(self, request: web.Request) -> web.Response:
        status = self._sessions.get(request.match_info["session"])
        return web.json_response({"status": status}) if status else web.json_response({}, status=404)

    async def _stop(self, request: web.Request) -> web.Response:
        self._sessions[request.match_info["session"]] = "ended"
        return web.Response(status=204)


def tree(root: int) -> list[int]:
    """`root` and every process under it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def cpu_percent(root: int, seconds: float = SAMPLE_SECONDS) -> float:
    """The tree's CPU over `seconds`, in % of one core."""
    before, started = cpu_ticks(tree(root)), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_ticks(tree(root)) - before) / CLOCK_TICKS / (time.monotonic() - started) * 100


def start_edge(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m sipedge` once it says it is ready."""
    with open(log, "wb") as out:
        edge = subprocess.Popen([sys.executable, "-m", "sipedge"], stdout=out, stderr=out, cwd=ROOT,
                                env={**os.environ, "SIP_EDGE_CONFIG": str(config),
                                     "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")})
    deadline = time.monotonic() + 120
    while "sipedge: ready" not in log.read_text(errors="replace"):
        if edge.poll() is not None or time.monotonic() > deadline:
            edge.kill()
            raise SystemExit(f"the edge did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return edge


def write_config(folder: Path, dispatcher_port: int, sip_port: int, workers: int) -> Path:
    rtp_ports = max(40, workers * 12)
    config = folder / "edge.toml"
    several = f"workers = {workers}\nworker_sip_port = {free_port_pair(workers)}\n" if workers > 1 else ""
    config.write_text(f'dispatcher_url = "http://127.0.0.1:{dispatcher_port}"\nsip_address = "127.0.0.1"\n'
                      f"sip_port = {sip_port}\nrtp_port = {free_port_pair(rtp_ports)}\nrtp_port_count = {rtp_ports}\n"
                      # no drain: the run's stop (SIGTERM, then a 30 s wait) ends whatever calls a failed run left
                      f'drain_seconds = 0\n{several}\n[[trunk]]\nname = "bench"\nsources = ["127.0.0.1/32"]\n'
                      f'numbers = {{ "{NUMBER}" = "" }}\n')
    return config


async def measure(calls: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_g711_wav(folder / "speech_ulaw.wav", speech_8k(), "ulaw")
        async with FakeDispatcher() as dispatcher:
            sip_port = free_port(socket.SOCK_DGRAM)
            config = write_config(folder, dispatcher.port, sip_port, workers)
            started = time.monotonic()
            edge = await asyncio.to_thread(start_edge, config, folder / "edge.log")
            try:
                ready = time.monotonic() - started
                await asyncio.sleep(3)
                idle_cpu, idle_rss = await cpu_percent(edge.pid), rss_mb(tree(edge.pid))
                sipp = await asyncio.create_subprocess_exec(
                    "sipp", "-sf", str(SCENARIO), "-s", NUMBER, "-i", "127.0.0.1", "-p", "0", f"127.0.0.1:{sip_port}",
                    "-m", str(calls), "-l", str(calls), "-r", str(CALLS_PER_SECOND),
                    "-mp", str(free_port_pair(2 * calls)), "-nostdin", "-timeout", "120", "-timeout_error", cwd=folder,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                dispatcher.wanted = calls
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dispatcher.all_open.wait(), calls / CALLS_PER_SECOND + UP_SECONDS)
                held = dispatcher.open_streams
                busy_cpu, busy_rss = await cpu_percent(edge.pid), rss_mb(tree(edge.pid))
                output, _ = await sipp.communicate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dispatcher.all_closed.wait(), CLOSE_SECONDS)
                left_open = dispatcher.open_streams
            finally:
                edge.terminate()
                edge.wait(30)
            refusals = [line for line in (folder / "edge.log").read_text(errors="replace").splitlines()
                        if "refused" in line]
        text = output.decode(errors="replace")
        succeeded = next((line.split("|")[-1].strip() for line in text.splitlines()
                          if line.startswith("  Successful call")), "?")
        load = "/".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"edge: {workers} worker(s); {calls} calls asked for; {os.cpu_count()} cores, load {load}")
        print(f"  process start to 'sipedge: ready': {ready:.1f} s")
        print(f"  calls held at once (open streams): {held} (most seen {dispatcher.most_streams}); "
              f"SIPp's successful calls: {succeeded} of {calls}")
        for line in [line for line in text.splitlines() if line.startswith("  Failed")][:8]:
            print(f"  SIPp: {line.strip()}")
        for line in refusals[:5]:
            print(f"  edge: {line.strip()[:160]}")
        print(f"  streams still open {CLOSE_SECONDS:g} s after SIPp's last BYE was answered: {left_open}")
        print(f"  idle: CPU {idle_cpu:.1f} % of a core, RSS {idle_rss:.0f} MB (the whole process tree)")
        print(f"  {held} calls: CPU {busy_cpu:.1f} % of a core, RSS {busy_rss:.0f} MB; "
              f"per call above idle: {(busy_cpu - idle_cpu) / max(held, 1):.2f} % of a core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--workers", type=int, default=17)
    args = parser.parse_args()
    asyncio.run(measure(args.calls, args.workers))


if __name__ == "__main__":
    main()
