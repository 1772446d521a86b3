"""A SIP call handed to a person: from `POST /sessions/{id}/transfer` to the person's phone ringing, and to the bridge.

    .venv/bin/python -m bench.transfer_times [--transfers 5]     # as root (a packet socket on lo), SIPp installed

A real `python -m dispatcher` (MACHINES=local, one warm reserve bot running tests/sip/briefing_bot.py, the warm
transfer tests' bot: its voice a 1400 Hz tone) and `python -m sipedge` in front of it, its trunk placing calls
to a second SIPp, the person (tests/sip/callee_answers.xml: rings, answers 0.5 s later). SIPp as the trunk's
caller; `--transfers` of each kind, one call at a time, each on a warm reserve:

1. cold, the REFER taken (tests/sip/call_refer_accepted.xml): the trunk's carrier dials the person from the
   REFER on, so the REFER reaching the trunk is where the person's phone starts ringing; the stand-in trunk
   reports them answering 5 s after its 180 NOTIFY, then the edge hangs up its leg.
2. cold, the REFER refused (bench/transfer_caller_refuses.xml, 603): the edge calls the person and bridges.
3. warm (bench/transfer_caller_warm.xml): the caller on hold, the person rung, briefed by the bot, bridged.

The callers of 2 and 3 play a steady 400 Hz tone from their answer on: the bridge is the first packet of it
to reach the person's media port (warm: and how many of the briefing's packets they heard before it). Every
SIP message and RTP packet is read off `lo` with the kernel's stamp; the request's send and answer are the
bench's `time.time()`, the same realtime clock. Prints each transfer, then p50/p95 per step and kind, with
the load average before and after; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.transfer_steps import CALLER_HZ, Step, Transfer, first_sip, first_tone, table, tone_times
from sipedge.call_transfer import MIN_RING_SECONDS
from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.sip.briefing_bot import BRIEFING_HZ, LINE_SECONDS
from tests.sip.caller_cue import CuedCaller
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge, write_g711_wav
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.loopback_udp import LoopbackUdp, can_capture
from tests.sip.sipp import run_callee, run_sipp
from tests.sip.test_transfer import EDGE_SECRET, active_session
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher

HERE = Path(__file__).parent
BRIEFING_BOT = HERE.parent / "tests" / "sip" / "briefing_bot.py"
DESK = "+14155550123"
SUMMARY = "Ana Lopez, order 1042, wants a refund for a broken lamp."
RETRY = {(404, "not_found"), (409, "no_live_call")}  # the call not answered, or its session not noted, yet
ANSWERED_SECONDS = 60.0
PACKET_SECONDS = 0.02  # callee_answers.xml's ptime (PJSIP's default, which its SDP leaves it)
BRIDGE_SECONDS = 15.0  # for the caller's tone to reach the person after the transfer's answer
TONE_SECONDS = 60

REFERRED = [
    Step("the request → the REFER at the trunk (the carrier dials the person from here)", "asked", "refer"),
    Step("the trunk's final NOTIFY (the person answered) → the edge's BYE to the caller", "notify", "bye"),
    Step("the final NOTIFY → the request's answer", "notify", "answered"),
]
# The person's leg, the same on both kinds the edge bridges itself.
RUNG = [
    Step("**the request → the person's INVITE (their phone rings)**", "asked", "invite"),
    Step("the person's 200 OK → the edge's ACK", "ok", "ack"),
]
JOINED = [
    Step("the person's 200 OK → the bridge (the caller's tone at the person)", "ok", "bridge"),
    Step("**the request → the bridge** (the person's 0.5 s ring included; warm: the 1.6 s briefing too)",
         "asked", "bridge"),
    Step("the request's answer → the bridge (the answer may come first: the audio follows the join by a media "
         "tick)", "answered", "bridge"),
]
BRIDGED = [Step("the request → the REFER at the trunk", "asked", "refer"),
           Step("the trunk's 603 → the person's INVITE", "refused", "invite"), *RUNG, *JOINED]
WARM = [*RUNG, Step("the person's 200 OK → the briefing's first audio at the person", "ok", "briefing"),
        Step("the briefing's last packet at the person → the bridge", "briefed", "bridge"), *JOINED]


@dataclass(frozen=True)
class Line:
    dispatcher: DispatcherProcess
    edge: EdgeProcess
    person_port: int


@dataclass(frozen=True)
class Asked:
    answer: httpx.Response
    asked: float  # the answered request's send, epoch seconds
    answered: float


async def transfer(api: httpx.AsyncClient, session_id: str, body: dict[str, Any]) -> Asked:
    """The transfer, asked again while the call is not answered yet: the last request's times (the earlier were
    refused before anything reached SIP)."""
    deadline = time.monotonic() + ANSWERED_SECONDS
    while True:
        asked = time.time()
        answer = await api.post(f"/sessions/{session_id}/transfer", json=body)
        answered = time.time()
        code = answer.json().get("error", {}).get("code", "") if answer.status_code >= 400 else ""
        if (answer.status_code, code) not in RETRY or time.monotonic() > deadline:
            return Asked(answer, asked, answered)
        await asyncio.sleep(0.1)


def outcome(asked: Asked, expected: str) -> str | None:
    """Why the transfer is not the kind measured, or None."""
    status = asked.answer.json().get("carrier_status") if asked.answer.status_code == 200 else None
    return None if status == expected else f"answer {asked.answer.status_code}: {asked.answer.text[:300]}"


async def referred(api: httpx.AsyncClient, line: Line) -> Transfer:
    sip = line.edge.sip_port
    capture = LoopbackUdp({sip})
    try:
        call = asyncio.create_task(asyncio.to_thread(run_sipp, "call_refer_accepted", NUMBER, sip,
                                                     line.edge.workdir))
        asked = await transfer(api, await active_session(api), {"to": DESK})
        await call
    finally:
        capture.stop()
    if (why := outcome(asked, "referred")) is not None:
        raise RuntimeError(why)
    seen, after = list(capture.datagrams), asked.asked
    return Transfer({"asked": after, "answered": asked.answered,
                     "refer": first_sip(seen, b"REFER ", after=after, from_port=sip),
                     "notify": first_sip(seen, b"NOTIFY ", after=after, to_port=sip,
                                         holding=b"Subscription-State: terminated"),
                     "bye": first_sip(seen, b"BYE ", after=after, from_port=sip)})


async def bridged(api: httpx.AsyncClient, line: Line, *, warm: bool) -> Transfer:
    """A caller playing the tone, handed to the person (the REFER refused, or warm), until the tone reached them."""
    sip, person_media = line.edge.sip_port, free_port_pair(2)
    capture = LoopbackUdp({sip, line.person_port, person_media})
    cued = CuedCaller()
    try:
        person = asyncio.create_task(asyncio.to_thread(run_callee, "callee_answers", line.person_port,
                                                       line.edge.workdir, media_port=person_media))
        # run_sipp names tests/sip/'s scenarios; an absolute path (pathlib keeps it) names the bench's own copy in
        # the edge's folder, SIPp's message trace written beside it.
        scenario = str(line.edge.workdir / ("transfer_caller_warm" if warm else "transfer_caller_refuses"))
        call = cued.calling(line.edge, scenario, free_port_pair(2))
        body = {"to": DESK, **({"mode": "warm", "summary": SUMMARY} if warm else {})}
        asked = await transfer(api, await active_session(api), body)
        for _ in range(int(BRIDGE_SECONDS * 5) if asked.answer.status_code == 200 else 0):
            if first_tone(list(capture.datagrams), person_media, CALLER_HZ, after=asked.asked) is not None:
                break
            await asyncio.sleep(0.2)
    finally:
        cued.cue()  # the caller hangs up; the edge then hangs the person's leg up
        capture.stop()
    await call
    await person
    if (why := outcome(asked, "warm" if warm else "bridged")) is not None:
        raise RuntimeError(why)
    seen, after = list(capture.datagrams), asked.asked
    moments = {"asked": after, "answered": asked.answered,
               "invite": first_sip(seen, b"INVITE ", after=after, to_port=line.person_port),
               "ok": first_sip(seen, b"SIP/2.0 200 ", after=after, from_port=line.person_port, holding=b"INVITE"),
               "ack": first_sip(seen, b"ACK ", after=after, to_port=line.person_port),
               "bridge": first_tone(seen, person_media, CALLER_HZ, after=after)}
    if warm:
        briefing = tone_times(seen, person_media, BRIEFING_HZ, after=after)
        moments["briefing"], moments["briefed"] = (briefing[0], briefing[-1]) if briefing else (None, None)
        note = f"the person heard {len(briefing)} packets of the briefing's {LINE_SECONDS / PACKET_SECONDS:.0f}"
    else:
        moments["refer"] = first_sip(seen, b"REFER ", after=after, from_port=sip)
        moments["refused"] = first_sip(seen, b"SIP/2.0 603 ", after=after, to_port=sip)
    return Transfer(moments, note if warm else "")


def shown(moments: dict[str, float | None]) -> str:
    """Each moment after the request, in ms, in the order they came."""
    start = moments["asked"] or 0.0
    ordered = sorted(((at, name) for name, at in moments.items() if at is not None and name != "asked"))
    missing = [name for name, at in moments.items() if at is None]
    return ", ".join(f"{name} +{(at - start) * 1000:.0f}" for at, name in ordered) + (
        f"; not seen: {', '.join(missing)}" if missing else "")


@contextmanager
def running_line(root: Path) -> Iterator[Line]:
    """The dispatcher (the briefing bot) and the edge, whose trunk places calls to the person's SIPp, as
    tests/sip/test_transfer.py's and test_warm_transfer.py's lines are."""
    control_port, person_port = free_port(), free_port(socket.SOCK_DGRAM)
    control = f"http://127.0.0.1:{control_port}"
    for folder in ("dispatcher", "edge", "reports"):
        (root / folder).mkdir()
    env = {**phone_env(root / "reports"), "BOT_FILE": str(BRIEFING_BOT), "LOG_LEVEL": "warning",
           "SIP_EDGE_URL": control, "SIP_EDGE_SECRET": EDGE_SECRET,
           "PHONE_TRANSFER_TARGETS": f"{DESK},127.0.0.1", "PHONE_TRANSFER_TIME_LIMIT_SECONDS": "60"}
    trunk = (f'termination_uri = "sip:127.0.0.1:{person_port}"\nring_seconds = {MIN_RING_SECONDS:g}\n'
             'destinations = ["+1*"]')
    for scenario in ("transfer_caller_warm", "transfer_caller_refuses"):
        shutil.copy(HERE / f"{scenario}.xml", root / "edge")
    # Longer than a transfer's wait for the bridge: SIPp's loop back to the file's start sends a packet of its header.
    tone = (np.sin(2 * np.pi * CALLER_HZ * np.arange(TONE_SECONDS * 8000) / 8000) * 9000).astype(np.int16)
    write_g711_wav(root / "edge" / "caller_tone_ulaw.wav", tone.tobytes(), "ulaw")
    with (run_dispatcher(root / "dispatcher", env) as dispatcher,
          run_edge(dispatcher, root / "edge", settings=f"control_port = {control_port}\n{KEY_SETTINGS}",
                   trunk_settings=trunk, env=edge_keys(EDGE_SECRET, control)) as edge):
        yield Line(dispatcher, edge, person_port)


KINDS: dict[str, tuple[list[Step], Callable[[httpx.AsyncClient, Line], Awaitable[Transfer]]]] = {
    "cold, the REFER taken by the trunk": (REFERRED, referred),
    "cold, the REFER refused: bridged by the edge": (BRIDGED, lambda api, line: bridged(api, line, warm=False)),
    "warm: rung, briefed, bridged": (WARM, lambda api, line: bridged(api, line, warm=True)),
}


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=5, help="of each kind")
    args = parser.parse_args()
    if (why := can_capture()) is not None or (why := None if shutil.which("sipp") else "SIPp is not installed"):
        print(f"cannot run: {why}")
        return 2
    before, started = load(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict[str, list[Transfer]] = {kind: [] for kind in KINDS}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="transfer-times-") as tmp, running_line(Path(tmp)) as line:
        async with httpx.AsyncClient(base_url=line.dispatcher.base_url, timeout=60) as api:
            for kind, (_, measure) in KINDS.items():
                for number in range(args.transfers):
                    await wait_for_idle_bot(api)
                    try:
                        measured = await measure(api, line)
                    except RuntimeError as exc:  # told, and the rest still measured
                        failed.append(f"{kind} #{number + 1}: {exc}")
                        print(f"{kind} #{number + 1}: failed: {exc}\n{line.edge.log()[-2000:]}", flush=True)
                        continue
                    results[kind].append(measured)
                    print(f"{kind} #{number + 1}: {shown(measured.moments)} ms"
                          f"{'; ' if measured.note else ''}{measured.note}", flush=True)
    print(f"\n{started}; load average (1/5/15 min) before {before}, after {load()}; {os.cpu_count()} cores; "
          f"{args.transfers} transfers of each kind, {len(failed)} failed")
    for kind, (steps, _) in KINDS.items():
        print(f"\n{kind}\n\n| step | measured | missing |\n|---|---|---|")
        print("\n".join(table(steps, results[kind])))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
