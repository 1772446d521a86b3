"""Raw SIP over UDP, as a scanner or a misbehaving trunk sends it: INVITEs SIPp's scenarios cannot
shape (no SDP, a truncated one, hundreds back to back) and OPTIONS, with the answers read back."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

GOOD_SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 30000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
TRUNCATED_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nm=aud"


@dataclass
class Dialog:
    call_id: str
    from_tag: str
    to: str  # the To header, with the edge's tag once it answered

    def answered(self, response: str) -> Dialog:
        to = next(line.split(":", 1)[1].strip() for line in response.split("\r\n") if line.lower().startswith("to:"))
        return Dialog(self.call_id, self.from_tag, to)


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

    def _send(self, method: str, number: str, body: str, dialog: Dialog | None = None, cseq: int = 1,
              extra: str = "") -> Dialog:
        port = self.sock.getsockname()[1]
        dialog = dialog or Dialog(f"{secrets.token_hex(8)}@{self.source}", secrets.token_hex(4),
                                  f"<sip:{number}@127.0.0.1>")
        content_type = "Content-Type: application/sdp\r\n" if body else ""
        message = (f"{method} sip:{number}@127.0.0.1:{self.edge_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {self.source}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:+14155550100@127.0.0.1>;tag={dialog.from_tag}\r\n"
                   f"To: {dialog.to}\r\nCall-ID: {dialog.call_id}\r\nCSeq: {cseq} {method}\r\n"
                   f"Contact: <sip:caller@{self.source}:{port}>\r\n{extra}"
                   f"{content_type}Content-Length: {len(body.encode())}\r\n\r\n{body}")
        self.sock.sendto(message.encode(), ("127.0.0.1", self.edge_port))
        return dialog

    def invite(self, number: str, body: str = GOOD_SDP, extra: str = "") -> Dialog:
        """`extra`: more header lines, each ending in CRLF."""
        return self._send("INVITE", number, body, extra=extra)

    def in_dialog(self, method: str, number: str, dialog: Dialog, cseq: int, body: str = "", extra: str = "") -> None:
        """A request within `dialog` (an ACK, a re-INVITE, a REFER...), from this socket's source;
        `extra`: more header lines, each ending in CRLF."""
        self._send(method, number, body, dialog, cseq, extra)

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
        return self.first_answer(seconds, lambda message: status_of(message) >= 200)

    def first_answer(self, seconds: float, wanted: Callable[[str], bool]) -> str | None:
        """The first message received within `seconds` that is `wanted`, as soon as it comes; None if none did."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                message = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                return None
            if wanted(message):
                return message
        return None


def status_of(message: str) -> int:
    first = message.split("\r\n", 1)[0]
    return int(first.split(" ", 2)[1]) if first.startswith("SIP/2.0 ") else 0
