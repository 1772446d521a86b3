"""A cue to SIPp the caller, in place of a fixed pause: its scenario waits at `<recv request="INFO">`
(call_warm.xml) and goes on when the test has seen what it waited for, so a call lasts as long as its
test needs on a quiet machine and on a busy one alike. The INFO goes from the test straight to SIPp's
port in the call's dialog (its Call-ID); the edge never sees it, and SIPp answers nothing. A scenario
whose wait has a timeout (`ontimeout`) goes on by itself after it, for the tests that do not cue it."""

from __future__ import annotations

import asyncio
import itertools
import socket
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from tests.sip.conftest import NUMBER, EdgeProcess
from tests.sip.sipp import HERE, SippRun, run_sipp
from tests.support.ports import free_port

_cseqs = itertools.count(100)


@dataclass
class CuedCaller:
    """Where SIPp the caller listens (`sip_port`) and its call's Call-ID, for `run_sipp`."""
    sip_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    call_id: str = field(default_factory=lambda: f"cued-{uuid.uuid4().hex}@127.0.0.1")
    cued: bool = False

    def calling(self, edge: EdgeProcess, scenario: str, media_port: int | None = None) -> asyncio.Task[SippRun]:
        """SIPp the trunk's caller playing `scenario` to `edge`, listening where `cue` sends: its run, to its end."""
        return asyncio.create_task(asyncio.to_thread(run_sipp, scenario, NUMBER, edge.sip_port, edge.workdir,
                                                     media_port=media_port, sip_port=self.sip_port,
                                                     call_id=self.call_id))

    def cue(self) -> None:
        """Sends the caller its INFO, once (a second, where the scenario waits for none, would fail the
        call): the scenario's `<recv request="INFO">` takes it. Safe in a `finally` after a failure."""
        if self.cued:
            return
        self.cued = True
        cseq = next(_cseqs)
        message = (f"INFO sip:caller@127.0.0.1:{self.sip_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-cue-{cseq}\r\n"
                   "From: <sip:test@127.0.0.1>;tag=cue\r\n"
                   f"To: <sip:caller@127.0.0.1:{self.sip_port}>\r\n"
                   f"Call-ID: {self.call_id}\r\n"
                   f"CSeq: {cseq} INFO\r\n"
                   "Max-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(message.encode(), ("127.0.0.1", self.sip_port))


def goes_on_uncued_after(scenario: str) -> float:
    """The least seconds from SIPp's start to where `scenario` stops waiting for the cue by itself (its
    pauses before the wait, and the wait's timeout): a cue sent later may meet the BYE that follows,
    which fails the call."""
    paused = 0
    for step in ET.parse(HERE / f"{scenario}.xml").getroot():
        if step.tag == "pause":
            paused += int(step.get("milliseconds", "0"))
        elif step.tag == "recv" and step.get("request") == "INFO":
            if step.get("ontimeout") is None:
                raise ValueError(f"{scenario}.xml waits for its cue with no timeout: cue it, whatever happens")
            return (paused + int(step.get("timeout", "0"))) / 1000
    raise ValueError(f"{scenario}.xml waits for no cue: give it <recv request=\"INFO\" timeout=… ontimeout=…>")
