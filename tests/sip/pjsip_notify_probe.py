"""`python -m tests.sip.pjsip_notify_probe PORT`: one PJSUA2 endpoint (the edge's wheel, configured as the
edge's stack configures it) answers a call from the trunk (TRUNK) with the edge's own SipCall and sends the
trunk a REFER, which the trunk accepts (202). Then a stranger (STRANGER) who knows the dialog's ids sends a
NOTIFY whose sipfrag says the person answered (200), the trunk sends its own 180 and 200, and the stranger
sends an unsolicited NOTIFY outside any dialog (a voicemail summary, which PJSUA answers by default). Prints
one JSON line: each step's answers, the transfer statuses the call was told, and the NOTIFYs the edge
counted as strangers'. A process of its own: PJSUA's library is one per process."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time

import pjsua2 as pj

from sipedge.sip_call import SipCall
from sipedge.stack import ua_config
from tests.sip.pjsip_pump import pump

TRUNK, STRANGER = "127.0.0.20", "127.0.0.99"


def main(port: int) -> None:
    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    ua_config(config.uaConfig, max_calls=4)
    config.uaConfig.mainThreadOnly, config.medConfig.threadCnt = True, 0
    config.logConfig.level = config.logConfig.consoleLevel = 0
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.port, transport.boundAddress = port, "127.0.0.1"
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()
    calls: list[SipCall] = []
    told: list[list[object]] = []
    ignored: list[str] = []

    class Account(pj.Account):  # type: ignore[misc]
        def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
            call = SipCall(self, prm.callId, lambda call: None)
            call.from_trunk = lambda source: source.rsplit(":", 1)[0] == TRUNK
            call.stranger_request = lambda source, method: ignored.append(f"{method} {source.rsplit(':', 1)[0]}")
            calls.append(call)
            answer = pj.CallOpParam(True)
            answer.statusCode = 200
            call.answer(answer)

    account = Account()
    account_config = pj.AccountConfig()
    account_config.idUri = "sip:edge@127.0.0.1"
    account.create(account_config, True)

    def send(sock: socket.socket, lines: list[str], body: str = "") -> None:
        sock.sendto(("\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n" + body).encode(),
                    ("127.0.0.1", port))

    def request(sock: socket.socket, method: str, cseq: int, to_tag: str | None, body: str = "",
                extra: tuple[str, ...] = (), contact: bool = True) -> None:
        host, sport = sock.getsockname()
        send(sock, [f"{method} sip:edge@127.0.0.1:{port} SIP/2.0",
                    f"Via: SIP/2.0/UDP {host}:{sport};branch=z9hG4bK{time.time_ns()}", "Max-Forwards: 70",
                    f"From: <sip:+14155550100@{TRUNK}>;tag=trunk1",
                    "To: <sip:edge@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""), "Call-ID: notify-probe",
                    f"CSeq: {cseq} {method}", *([f"Contact: <sip:trunk@{host}:{sport}>"] if contact else []), *extra],
             body)

    def notify(sock: socket.socket, cseq: int, tag: str, status: str, state: str, contact: bool = True) -> None:
        request(sock, "NOTIFY", cseq, tag, f"SIP/2.0 {status}\r\n",
                ("Event: refer", f"Subscription-State: {state}", "Content-Type: message/sipfrag;version=2.0"), contact)

    def first_lines(messages: list[str]) -> list[str]:
        return [m.split("\r\n", 1)[0] for m in messages]

    trunk, stranger = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    for sock, host in ((trunk, TRUNK), (stranger, STRANGER)):
        sock.bind((host, 0))
        sock.settimeout(0.02)
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {TRUNK}\r\ns=-\r\nc=IN IP4 {TRUNK}\r\nt=0 0\r\n"
           "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    request(trunk, "INVITE", 1, None, sdp, ("Content-Type: application/sdp",))
    ok = next(a for a in pump(endpoint, trunk, 1.5) if a.startswith("SIP/2.0 200"))
    found = re.search(r"^To:.*;tag=([^;\r\n]+)", ok, re.M | re.I)
    assert found is not None
    tag = found.group(1)
    request(trunk, "ACK", 1, tag)
    pump(endpoint, trunk, 0.3)
    call = calls[0]
    call.on_transfer_status = lambda status, final: told.append([status, final])
    # Before any REFER: no subscription takes it. Without a Contact, which PJSIP would take as the call's new
    # address whoever sent it (docs/sip.md), so that the REFER below still goes to the trunk.
    notify(stranger, 2, tag, "200 OK", "terminated", contact=False)
    unsolicited: dict[str, object] = {"step": "stranger NOTIFY before a REFER",
                                      "answers": first_lines(pump(endpoint, stranger, 0.5)),
                                      "told": list(told)}
    call.xfer("sip:+14155550123@127.0.0.20", pj.CallOpParam(True))
    refer = next(m for m in pump(endpoint, trunk, 1.0) if m.startswith("REFER "))
    send(trunk, ["SIP/2.0 202 Accepted", *[line for line in refer.split("\r\n")
                                           if line.lower().startswith(("via:", "from:", "to:", "call-id:", "cseq:"))]])
    pump(endpoint, trunk, 0.3)
    steps: list[dict[str, object]] = [unsolicited, {"step": "REFER accepted", "told": list(told)}]
    for who, sock, cseq, status, state in (("stranger", stranger, 3, "200 OK", "active;expires=60"),
                                           ("trunk", trunk, 4, "180 Ringing", "active;expires=60"),
                                           ("trunk", trunk, 5, "200 OK", "terminated;reason=noresource")):
        del told[:]
        notify(sock, cseq, tag, status, state)
        answers = first_lines(pump(endpoint, sock, 0.5))
        steps.append({"step": f"{who} NOTIFY {status}", "answers": answers, "told": list(told)})
    request(stranger, "NOTIFY", 1, None, "Messages-Waiting: yes\r\n",
            ("Event: message-summary", "Subscription-State: active",
             "Content-Type: application/simple-message-summary"))
    steps.append({"step": "stranger NOTIFY outside a dialog", "answers": first_lines(pump(endpoint, stranger, 0.8))})
    steps.append({"step": "counted", "ignored": ignored, "ended": call.ended})
    print(json.dumps(steps), flush=True)
    os._exit(0)  # PJSUA's teardown with a call object in Python's hands is not what is probed here


if __name__ == "__main__":
    main(int(sys.argv[1]))
