"""`python -m tests.sip.pjsip_register_probe SIP_PORT RTP_PORT`: the edge's SIP stack (sipedge/stack.py, a real
PJSUA2 endpoint on its SIP thread) registering three trunks whose REGISTERs PJSUA refuses to send, each its own
way: `unparsed`'s registrar is no URI PJSIP parses (its account is refused); `pending`'s registrar (a socket here)
holds the first REGISTER unanswered while the edge registers again (PJSIP_EBUSY raised, telling no answer);
`unresolved`'s name does not resolve (PJ_ERESOLVE raised, and told as a 502). Prints one JSON line: each trunk's
registration after its refusal, `pending`'s once its registrar answers 200, and the edge's log lines. A process
of its own: PJSUA's library is one per process."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys

from sipedge.config import EdgeConfig, Trunk
from sipedge.registrations import Registrations
from sipedge.stack import SipStack
from tests.support.waiting import wait_until

WAIT_SECONDS = 10.0


def _ok(request: str) -> bytes:
    """A registrar's 200 to `request`: its Via, From, Call-ID, CSeq and Contact, its To tagged."""
    lines = request.split("\r\n")
    copied = [line for line in lines if line.split(":", 1)[0].strip().lower() in ("via", "from", "call-id", "cseq",
                                                                                 "contact")]
    to = next(line for line in lines if line.split(":", 1)[0].strip().lower() == "to")
    return ("\r\n".join(["SIP/2.0 200 OK", *copied, f"{to};tag=probe", "Expires: 300", "Content-Length: 0"])
            + "\r\n\r\n").encode()


def _shown(registrations: Registrations, trunk: str) -> dict[str, object]:
    state = registrations.of(trunk)
    return {"state": state.state, "code": state.code, "status": state.status, "reason": state.reason}


def main(port: int, rtp_port: int) -> None:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("sipedge").addHandler(handler)
    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    registrar.bind(("127.0.0.1", 0))
    registrar.settimeout(WAIT_SECONDS)

    def trunk(name: str, uri: str) -> Trunk:
        return Trunk(name, (), {}, registrar=uri, digest_username="edge", digest_password="probe-password")

    trunks = (trunk("unparsed", "sip:pbx:port"), trunk("pending", f"sip:127.0.0.1:{registrar.getsockname()[1]}"),
              trunk("unresolved", "sip:pbx.invalid"))
    stack = SipStack(EdgeConfig("http://127.0.0.1:9", "127.0.0.1", port, rtp_port, 4, 30.0, trunks),
                     lambda call, source, message: None, lambda call: None)
    stack.start()
    stack.started.wait()
    if stack.failed is not None:
        raise SystemExit(f"pjsip_register_probe: the stack did not start: {stack.failed}")
    first, sender = registrar.recvfrom(65536)  # `pending`'s first REGISTER, left unanswered for now
    pending = next(a for a in stack._accounts if a._registers_for == "pending")  # noqa: SLF001  (the probe's aim)
    stack.submit(pending.register)  # while the first is in flight: PJSIP_EBUSY
    wait_until(lambda: stack.registrations.of("pending").state != "registering", "the second REGISTER's refusal",
               timeout=WAIT_SECONDS)
    refused = {name: _shown(stack.registrations, name) for name in ("unparsed", "pending", "unresolved")}
    registrar.sendto(_ok(first.decode()), sender)
    wait_until(lambda: stack.registrations.of("pending").state == "registered", "the registration once answered",
               timeout=WAIT_SECONDS)
    print(json.dumps({"refused": refused, "answered": _shown(stack.registrations, "pending"), "log": lines}),
          flush=True)
    os._exit(0)  # PJSUA's teardown is not what is probed here


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
