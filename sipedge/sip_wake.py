"""Waking the SIP thread out of PJSIP's poll when it is handed work (an answer, a hang-up), so the
poll need not return every 10 ms just to look for work: it waits up to POLL_MS, PJSIP's own timers
bounding it (pjsip_endpt_handle_events2 waits no longer than its next timer). The wake-up is a
datagram of CRLFs to the edge's own SIP port over UDP, which PJSIP's transport skips as a keep-alive
before any parsing or callback (RFC 5626's ping, sip_transport.c). One lost (a full socket buffer)
costs that work POLL_MS at most."""

from __future__ import annotations

import contextlib
import socket

POLL_MS = 100
PING = b"\r\n\r\n"
_ANY_TO_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104  (bound to any: reached on loopback)


class SipWake:
    def __init__(self, sip_host: str, sip_port: int) -> None:
        host = _ANY_TO_LOOPBACK.get(sip_host, sip_host)
        self._target = (host, sip_port)
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def wake(self) -> None:
        """From any thread; never blocks."""
        with contextlib.suppress(OSError):
            self._socket.sendto(PING, self._target)

    def close(self) -> None:
        self._socket.close()
