"""`python -m tests.sip.pjsip_offer_probe PORT [FORM]`: one PJSUA2 endpoint (the edge's wheel) answers a call
from the trunk (TRUNK) with the edge's own SipCall, whose guard decides who may move the call's
media; then the trunk and a stranger (STRANGER) send in-dialog requests with the dialog's ids. Prints
one JSON line: for each step, PJSIP's answers and where the call's RTP goes afterwards. FORM (a key of
LINE_FORMS) is how the stranger's re-INVITE without an offer writes its request line. A process of
its own: PJSUA's library is one per process."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time

import pjsua2 as pj

from sipedge.sip_call import SipCall
from tests.sip.pjsip_pump import pump

TRUNK, STRANGER = "127.0.0.20", "127.0.0.99"
# A request line's text before the method, and between it and the URI: PJSIP parses all three as INVITE.
LINE_FORMS = {"space": ("", " "), "tab": ("", "\t"), "leading space": (" ", " ")}


def main(port: int, form: str = "space") -> None:
    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.logConfig.level = config.logConfig.consoleLevel = 0
    config.uaConfig.threadCnt, config.uaConfig.mainThreadOnly, config.medConfig.threadCnt = 0, True, 0
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.port, transport.boundAddress = port, "127.0.0.1"
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()
    calls: list[SipCall] = []

    class Account(pj.Account):  # type: ignore[misc]
        def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
            call = SipCall(self, prm.callId, lambda call: None)
            call.from_trunk = lambda source: source.rsplit(":", 1)[0] == TRUNK
            calls.append(call)
            answer = pj.CallOpParam(True)
            answer.statusCode = 200
            call.answer(answer)

    account = Account()
    account_config = pj.AccountConfig()
    account_config.idUri = "sip:edge@127.0.0.1"
    account.create(account_config)

    def sdp(host: str, rtp: int) -> str:
        return (f"v=0\r\no=- 1 {rtp} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
                f"m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    def request(sock: socket.socket, method: str, cseq: int, to_tag: str | None, body: str = "",
                branch: str = "", line: tuple[str, str] = LINE_FORMS["space"]) -> str:
        host, sport = sock.getsockname()
        branch = branch or f"z9hG4bK{time.time_ns()}"
        lines = [f"{line[0]}{method}{line[1]}sip:edge@127.0.0.1:{port} SIP/2.0",
                 f"Via: SIP/2.0/UDP {host}:{sport};branch={branch}", "Max-Forwards: 70",
                 f"From: <sip:+14155550100@{TRUNK}>;tag=trunk1",
                 "To: <sip:edge@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""), "Call-ID: offer-probe",
                 f"CSeq: {cseq} {method}", f"Contact: <sip:trunk@{host}:{sport}>",
                 *(["Content-Type: application/sdp"] if body else []), f"Content-Length: {len(body)}"]
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), ("127.0.0.1", port))
        return branch

    def rtp_to() -> str | None:
        if not calls or calls[0].ended:
            return None
        return str(calls[0].getStreamInfo(0).remoteRtpAddress)

    trunk, stranger = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    for sock, host in ((trunk, TRUNK), (stranger, STRANGER)):
        sock.bind((host, 0))
        sock.settimeout(0.02)
    request(trunk, "INVITE", 1, None, sdp(TRUNK, 30000))
    ok = next(a for a in pump(endpoint, trunk, 1.5) if a.startswith("SIP/2.0 200"))
    found = re.search(r"^To:.*;tag=([^;\r\n]+)", ok, re.M | re.I)
    assert found is not None
    tag = found.group(1)
    request(trunk, "ACK", 1, tag)
    pump(endpoint, trunk, 0.5)
    steps: list[dict[str, object]] = [{"step": "answered", "rtp": rtp_to()}]
    cseq = 2
    for who, sock, method, body in (("trunk", trunk, "INVITE", sdp(TRUNK, 30010)),
                                    ("stranger", stranger, "UPDATE", sdp(STRANGER, 32000)),
                                    ("stranger", stranger, "INVITE", sdp(STRANGER, 31000)),
                                    ("stranger", stranger, "INVITE", "")):
        branch = request(sock, method, cseq, tag, body, line=LINE_FORMS["space" if body else form])
        answers = [a.split("\r\n", 1)[0] for a in pump(endpoint, sock, 1.0)]
        if method == "INVITE" and any(a.startswith("SIP/2.0 200") for a in answers):
            request(sock, "ACK", cseq, tag, "" if body else sdp(STRANGER, 33000))  # an offerless one's answer
            answers += [a.split("\r\n", 1)[0] for a in pump(endpoint, sock, 0.8)]
        elif method == "INVITE":
            request(sock, "ACK", cseq, tag, branch=branch)  # a refusal's ACK: its INVITE's branch
        steps.append({"step": f"{who} {method}{'' if body else ' without an offer'}", "answers": answers,
                      "rtp": rtp_to()})
        cseq += 1
    print(json.dumps(steps), flush=True)
    os._exit(0)  # PJSUA's teardown with a call object in Python's hands is not what is probed here


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:3])
