"""Raw SIP over UDP, as a scanner or a misbehaving trunk sends it: INVITEs SIPp's scenarios cannot
shape (no SDP, a truncated one, hundreds back to back) and OPTIONS, with the answers read back."""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass

GOOD_SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 30000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
TRUNCATED_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nm=aud"


@dataclass
class RawSip:
    """A UDP socket bound on `source` (any 127.0.0.0/8 address is loopback on Linux) that talks to
    the edge on 127.0.0.1:`edge_port`."""

    source: str
    edge_port: int

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # a burst's answers, all kept
        self.sock.bind((self.source, 0))

    def close(self) -> None:
        self.sock.close()

    def _send(self, method: str, number: str, body: str, extra: str = "") -> None:
        port = self.sock.getsockname()[1]
        tag, call_id, branch = secrets.token_hex(4), secrets.token_hex(8), secrets.token_hex(8)
        content_type = "Content-Type: application/sdp\r\n" if body else ""
        message = (f"{method} sip:{number}@127.0.0.1:{self.edge_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {self.source}:{port};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:+14155550100@{self.source}>;tag={tag}\r\nTo: <sip:{number}@127.0.0.1>\r\n"
                   f"Call-ID: {call_id}@{self.source}\r\nCSeq: 1 {method}\r\n"
                   f"Contact: <sip:caller@{self.source}:{port}>\r\n"
                   f"{extra}{content_type}Content-Length: {len(body.encode())}\r\n\r\n{body}")
        self.sock.sendto(message.encode(), ("127.0.0.1", self.edge_port))

    def invite(self, number: str, body: str = GOOD_SDP) -> None:
        self._send("INVITE", number, body)

    def options(self, number: str) -> None:
        self._send("OPTIONS", number, "")

    def answers(self, seconds: float) -> list[str]:
        """Every message received for `seconds` (each one's text)."""
        received: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                received.append(self.sock.recv(65535).decode(errors="replace"))
            except TimeoutError:
                break
        return received

    def final_answer(self, seconds: float) -> str | None:
        """The first final (non-1xx) response within `seconds`, whole."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for message in self.answers(min(left, 1.0)):
                if status_of(message) >= 200:
                    return message
        return None


def status_of(message: str) -> int:
    first = message.split("\r\n", 1)[0]
    return int(first.split(" ", 2)[1]) if first.startswith("SIP/2.0 ") else 0
