"""What an ended session leaves in the dispatcher's process: objects Python's collector tracks, cyclic garbage
only a collection frees, and memory (malloc's and the kernel's), per kind of session.

    .venv/bin/python -m bench.dispatcher_garbage [--sessions 40] [--at-once 4] [--kinds web,twilio,sip] [--traced]

Each kind against its own real `python -m dispatcher` (MACHINES=local, keyless), run under bench/gc_probe.py:
  web     `POST /start?wait=started`, an offer relayed over the bot channel, `DELETE /sessions/{id}`; the bots
          tests/dispatcher/standin_bot.py (the channel's contract, no Pipecat)
  twilio  a carrier's media stream (`/ws/twilio`): its first messages, a second of the bot's audio, the hang-up;
          the bots bench/phone_echo_host.py (every frame echoed through the relay)
  sip     as the SIP edge does it (sipedge/dispatcher_link.py): `POST /start` with the edge's credential, the
          stream opened by the edge's own client, a second of audio, the hang-up, `POST /sessions/{id}/sip_end`
After a warm-up (`--warmup` sessions, then one full collection), a snapshot; then `--sessions`, `--at-once` at
a time; once the dispatcher is quiet (no session active, its reserve refilled), a snapshot, one full collection
(what it found, by type) and a snapshot. Prints, per ended session, what stayed before and after that collection,
the collector's own collections meanwhile, and the WebSocket extensions each stream negotiated. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from dispatcher.phone.edge_secret import EdgeSecret
from sipedge.dispatcher_link import CallToken, DispatcherLink
from sipedge.sip_end import SipEnd
from tests.dispatcher.conftest import STANDIN_BOT
from tests.fakes.carriers import CarrierCall
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher

ROOT = Path(__file__).resolve().parents[1]
ECHO_HOST = (sys.executable, str(ROOT / "bench" / "phone_echo_host.py"))
EDGE_SECRET = "edge-control-secret-for-the-bench-0123456789"
PROBE = (sys.executable, "-m", "bench.gc_probe")
KEEP_ENDED_SECONDS = 1.0
QUIET_SECONDS = 3.0  # after the last end: a session's trailing work (its timeline's last rows, its bot's exit)
TOP = 12


class Probe:
    def __init__(self, port: int) -> None:
        self.port = port

    def ask(self, command: str) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=120) as conn:
            conn.sendall(command.encode() + b"\n")
            with conn.makefile("rb") as answer:
                return dict(json.loads(answer.readline()))


async def metric_sum(api: httpx.AsyncClient, prefix: str) -> float:
    text = (await api.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


async def quiet(api: httpx.AsyncClient, idle: int, timeout: float = 300) -> None:
    """No session active, the reserve back to `idle` bots and none warming, then QUIET_SECONDS more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await metric_sum(api, "voicefleet_active_sessions{") == 0
                and await metric_sum(api, 'voicefleet_reserve_bots{provider="local",state="idle"}') == idle
                and await metric_sum(api, 'voicefleet_reserve_bots{provider="local",state="warming"}') == 0):
            await asyncio.sleep(QUIET_SECONDS)
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the dispatcher never became quiet")


async def web_session(api: httpx.AsyncClient, extensions: Counter[str]) -> None:
    started = await api.post("/start?wait=started", json={})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    answer = await api.post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"})
    assert answer.status_code == 200, answer.text
    stopped = await api.delete(f"/sessions/{session_id}")
    assert stopped.status_code in (202, 204), stopped.text
    extensions["(no WebSocket: the bot's channel only)"] += 1


async def _a_second_of_audio(call: CarrierCall, extensions: Counter[str]) -> None:
    assert call.ws is not None
    extensions[",".join(map(str, call.ws.protocol.extensions)) or "none"] += 1
    await call.handshake()
    try:
        await call.bot_audio(1.0, timeout=60)
    finally:
        with contextlib.suppress(ConnectionClosed):
            await call.hang_up()


async def twilio_session(api: httpx.AsyncClient, extensions: Counter[str]) -> None:
    call = CarrierCall("twilio", str(api.base_url).replace("http://", "ws://") + "/ws/twilio")
    await call.open()  # websockets' client, as a carrier's: permessage-deflate offered
    await _a_second_of_audio(call, extensions)


async def sip_session(link: DispatcherLink, extensions: Counter[str]) -> None:
    token = await link.call_token(None, {})
    assert isinstance(token, CallToken), token
    stream = await link.open_stream(token)
    assert isinstance(stream, ClientConnection), stream
    call = CarrierCall("exotel", token.url, ws=stream)
    await _a_second_of_audio(call, extensions)
    assert await link.tell_end(None, token.session_id, SipEnd("caller", "bye", answered_seconds=1.0))


def _diff(after: dict[str, int], before: dict[str, int]) -> Counter[str]:
    change = Counter(after)
    change.subtract(before)
    return Counter({name: n for name, n in change.items() if n})


def _per(value: float, sessions: int) -> str:
    return f"{value / sessions:,.1f}"


def report(kind: str, sessions: int, a: dict[str, Any], b: dict[str, Any], found: dict[str, Any],
           c: dict[str, Any], baseline_ms: float, extensions: Counter[str]) -> None:
    print(f"\n== {kind}: {sessions} sessions ended; each stream's extensions: {dict(extensions)}")
    print(f"  collector's own collections meanwhile (gen 0/1/2): "
          f"{[y - x for x, y in zip(a['collections'], b['collections'], strict=True)]}, finding "
          f"{[y - x for x, y in zip(a['found'], b['found'], strict=True)]} objects; gc.get_count() then {b['count']}")
    print(f"  tracked objects: {a['tracked']:,} -> {b['tracked']:,} (ended) -> {c['tracked']:,} (collected); "
          f"per session {_per(b['tracked'] - a['tracked'], sessions)} before, "
          f"{_per(c['tracked'] - a['tracked'], sessions)} after")
    print(f"  the full collection: {found['found']:,} unreachable ({_per(found['found'], sessions)} a session, "
          f"{_per(found['shallow_bytes'], sessions)} B shallow a session) in {found['collect_ms']:.1f} ms "
          f"(after the warm-up, with nothing made since: {baseline_ms:.1f} ms)")
    for name in ("traced_bytes", "malloc_in_use", "python_blocks", "rss_kb", "anon_kb"):
        if name == "traced_bytes" and not a[name]:
            continue  # not traced (--traced)
        unit = 1024 if name in ("traced_bytes", "malloc_in_use") else 1
        print(f"  {name}: {a[name] / unit:,.0f} -> {b[name] / unit:,.0f} -> {c[name] / unit:,.0f}"
              f"{' KB' if unit == 1024 else ''}; per session "
              f"{_per((b[name] - a[name]) / unit, sessions)} before, "
              f"{_per((c[name] - a[name]) / unit, sessions)} after")
    print("  found unreachable, by type: " + ", ".join(f"{t} {n}" for t, n in Counter(found["types"]).most_common(TOP)))
    for name in ("frames", "exceptions"):
        if found[name]:
            print(f"  found unreachable, its {name}: "
                  + "; ".join(f"{n} x {t}" for t, n in Counter(found[name]).most_common(TOP)))
    print("  still tracked after it, by type (vs the snapshot before): "
          + ", ".join(f"{t} {n:+}" for t, n in _diff(c["types"], a["types"]).most_common(TOP)))


@contextlib.asynccontextmanager
async def edge_status() -> AsyncIterator[str]:
    """The edge's control API as far as the dispatcher asks it (`GET /status`, for its /metrics): answered, so
    that no edge that is not there makes the dispatcher's collector work (each refused connection leaves an
    error's frames in a cycle, per /metrics read, not per session)."""
    async def status(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    app = web.Application()
    app.router.add_get("/status", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def run_kind(kind: str, args: argparse.Namespace, logs: Path) -> None:
    async with edge_status() as edge_url:
        await _run_kind(kind, args, logs, edge_url)


async def _run_kind(kind: str, args: argparse.Namespace, logs: Path, edge_url: str) -> None:
    probe = Probe(free_port())
    env = {"MACHINES": "local", "LOG_LEVEL": "warning", "GC_PROBE_PORT": str(probe.port),
           "RESERVE_MIN_IDLE": str(args.at_once), "RESERVE_MAX_IDLE": str(2 * args.at_once),
           "MAX_CONCURRENT_SESSIONS": str(4 * args.at_once),
           "LOCAL_BOT_COMMAND": " ".join(STANDIN_BOT if kind == "web" else ECHO_HOST),
           # The local provider keeps an ended bot's record (its process, pipes, tasks) for `status` 10 minutes:
           # by design and only local; a second here, so that what a session leaves elsewhere shows.
           "GC_PROBE_SET": f"dispatcher.machines.local.provider.KEEP_ENDED_SECONDS={KEEP_ENDED_SECONDS}"}
    if args.traced:
        env["GC_PROBE_TRACE"] = "1"
    if kind == "sip":
        env |= {"SIP_EDGE_URL": edge_url, "SIP_EDGE_SECRET": EDGE_SECRET}
    (logs / kind).mkdir()
    with run_dispatcher(logs / kind, env, command_prefix=PROBE) as dispatcher:

        async def batch(count: int, extensions: Counter[str]) -> None:
            """`count` sessions, `at_once` at a time, with clients of their own: once they are closed, the
            dispatcher holds no connection of theirs (a kept-alive one is not a session's leftover)."""
            link = DispatcherLink(dispatcher.base_url, EdgeSecret(EDGE_SECRET).edge_credential(edge_url), edge_url)
            try:
                async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=60) as api:
                    one: Callable[[], Awaitable[None]] = {
                        "web": lambda: web_session(api, extensions), "twilio": lambda: twilio_session(api, extensions),
                        "sip": lambda: sip_session(link, extensions)}[kind]
                    for first in range(0, count, args.at_once):
                        await quiet(api, args.at_once)
                        await asyncio.gather(*(one() for _ in range(min(args.at_once, count - first))))
                    await quiet(api, args.at_once)
            finally:
                await link.close()
            await asyncio.sleep(QUIET_SECONDS)  # the dispatcher sees its connections close

        await batch(args.warmup, Counter())
        baseline_ms = probe.ask("garbage")["collect_ms"]
        a = probe.ask("snapshot")
        if args.traced:
            probe.ask("trace_mark")
        extensions: Counter[str] = Counter()
        await batch(args.sessions, extensions)
        b = probe.ask("snapshot")
        found = probe.ask("garbage")
        c = probe.ask("snapshot")
        grown: dict[str, Any] = probe.ask("trace_diff") if args.traced else {"total": 0, "grown": []}
        described = {name: probe.ask(f"describe {name}")["described"] for name in args.describe.split(",")
                     if c["types"].get(name, 0) > a["types"].get(name, 0)}
    report(kind, args.sessions, a, b, found, c, baseline_ms, extensions)
    if args.traced:
        print(f"  still held after it, traced: {grown['total'] / args.sessions:+,.0f} B a session; by where it was "
              "made:")
    for where, size, count in grown["grown"][:TOP]:
        print(f"    {where}: {size / args.sessions:+,.0f} B ({count / args.sessions:+.1f} blocks) a session")
    for name, lines in described.items():
        print(f"  {name} now: " + "; ".join(f"{n} x {line}" for line, n in Counter(lines).most_common(TOP)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--at-once", type=int, default=4)
    parser.add_argument("--kinds", default="web,twilio,sip")
    parser.add_argument("--traced", action="store_true", help="Python's allocations traced (tracemalloc): "
                        "their bytes, at the cost of a slower dispatcher")
    parser.add_argument("--describe", default="asyncio.events.TimerHandle,_asyncio.Task,asyncio.streams.StreamReader",
                        help="types whose objects are said one by one when more are tracked after than before")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as logs:
        for kind in args.kinds.split(","):
            await run_kind(kind, args, Path(logs))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
