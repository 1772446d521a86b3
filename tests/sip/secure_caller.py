"""A raw SIP caller over TLS or UDP whose Via, SDP and transport the test chooses, as a misbehaving
trunk shapes them: the edge must judge an INVITE by the transport PJSIP received it on, never by what
its text claims. Each request's answers are read until a final one."""

from __future__ import annotations

import re
import secrets
import socket
import ssl
from dataclasses import dataclass, field

from tests.sip.certificates import Issued, TestCa
from tests.sip.raw_sip import status_of

ANSWER_SECONDS = 20.0
KEY = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
SDP_HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
SAVP = f"m=audio 30000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n"
AVP = "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
# Best-effort SRTP: plain RTP offered, with keys beside it for an answerer that would take SRTP.
AVP_BEST_EFFORT = f"m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n"
# Keys PJSIP cannot use (an unknown suite) beside plain RTP, and keys on another, disabled m= line.
AVP_UNUSABLE_KEY = f"m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 NO_SUCH_SUITE {KEY}\r\n"
AVP_KEY_ON_VIDEO = (f"m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/SAVP 31\r\n"
                    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n")
_HEAD_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"^(?:content-length|l)\s*:\s*(\d+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Leg:
    """One connection to the edge: TLS (a client certificate from `ca`) or UDP, sending requests
    whose top Via says `via`, whatever the transport."""

    port: int
    via: str
    tls: Issued | None = None
    ca: TestCa | None = None
    _buffer: bytes = b""
    _sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        if self.tls is not None and self.ca is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(self.ca.certificate)
            context.load_cert_chain(self.tls.certificate, self.tls.private_key)
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=ANSWER_SECONDS)
            self._sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        else:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.bind(("127.0.0.1", 0))
            self._sock.connect(("127.0.0.1", self.port))
        self._sock.settimeout(ANSWER_SECONDS)

    @property
    def streamed(self) -> bool:
        return self._sock.type == socket.SOCK_STREAM

    def close(self) -> None:
        self._sock.close()

    def send(self, message: str) -> None:
        self._sock.sendall(message.encode()) if self.streamed else self._sock.send(message.encode())

    def receive(self) -> str:
        if not self.streamed:
            return self._sock.recv(65535).decode(errors="replace")
        while True:
            head, found, _ = self._buffer.partition(_HEAD_END)
            if found:
                length = _LENGTH.search(head)
                end = len(head) + len(_HEAD_END) + (int(length.group(1)) if length else 0)
                if len(self._buffer) >= end:
                    message, self._buffer = self._buffer[:end], self._buffer[end:]
                    return message.decode(errors="replace")
            chunk = self._sock.recv(65535)
            if not chunk:
                raise ConnectionError("the edge closed the connection")
            self._buffer += chunk


@dataclass
class SecureCall:
    """A call to `number`: its INVITE, and once answered, its ACK, re-INVITEs and BYE."""

    number: str
    call_id: str = field(default_factory=lambda: f"secure-{secrets.token_hex(6)}")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    to_tag: str = ""
    contact: str = ""
    cseq: int = 0

    def request(self, leg: Leg, method: str, sdp: str = "", content_type: str = "application/sdp") -> list[str]:
        """Sends `method` over `leg`; the answers to an INVITE until its final one (none to an ACK). A body of
        another `content_type` than SDP is sent as given."""
        if method != "ACK":
            self.cseq += 1
        body = SDP_HEAD + sdp if sdp and content_type == "application/sdp" else sdp
        local = leg._sock.getsockname()
        transport = "tls" if leg.streamed else "udp"
        uri = self.contact or f"sip:{self.number}@127.0.0.1:{leg.port};transport={transport}"
        to_tag = f";tag={self.to_tag}" if self.to_tag else ""
        leg.send(f"{method} {uri} SIP/2.0\r\n"
                 f"Via: SIP/2.0/{leg.via} {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
                 f"Max-Forwards: 70\r\nFrom: <sip:+14155550100@127.0.0.1>;tag={self.from_tag}\r\n"
                 f"To: <sip:{self.number}@127.0.0.1>{to_tag}\r\nCall-ID: {self.call_id}\r\n"
                 f"CSeq: {self.cseq} {method}\r\nContact: <sip:caller@{local[0]}:{local[1]};transport={transport}>\r\n"
                 + (f"Content-Type: {content_type}\r\n" if body else "")
                 + f"Content-Length: {len(body)}\r\n\r\n{body}")
        if method == "ACK":
            return []
        answers = [leg.receive()]
        while status_of(answers[-1]) < 200:
            answers.append(leg.receive())
        return answers

    def invite(self, leg: Leg, sdp: str, content_type: str = "application/sdp") -> list[str]:
        """The INVITE's answers; a final one is ACKed, and a 200 OK makes this call's dialog."""
        answers = self.request(leg, "INVITE", sdp, content_type)
        final = answers[-1]
        tag = re.search(r"^(?:To|t)\s*:.*;tag=([^;\s]+)", final, re.IGNORECASE | re.MULTILINE)
        self.to_tag = tag.group(1) if tag else ""
        if status_of(final) == 200 and not self.contact:
            contact = re.search(r"^(?:Contact|m)\s*:\s*<([^>]+)>", final, re.IGNORECASE | re.MULTILINE)
            self.contact = contact.group(1) if contact else ""
        self.acknowledge(leg)
        return answers

    def acknowledge(self, leg: Leg) -> None:
        """ACKs the last INVITE's final answer over `leg`, then waits for the answer to an in-dialog
        OPTIONS sent after it: PJSIP has then taken the ACK, and the next INVITE, over whichever
        transport, finds no transaction pending (else 491)."""
        self.request(leg, "ACK")
        if self.to_tag:
            self.request(leg, "OPTIONS")


def keys_in(answers: list[str]) -> list[str]:
    """The SRTP keys (a=crypto lines) the edge sent in `answers`."""
    return [line for answer in answers for line in answer.split("\r\n") if line.startswith("a=crypto:")]
