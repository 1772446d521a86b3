"""Waking the SIP thread out of PJSIP's poll when it is handed work (an answer, a hang-up), so the
poll need not return every 10 ms just to look for work: it waits up to POLL_MS, PJSIP's own timers
bounding it (pjsip_endpt_handle_events2 waits no longer than its next timer). The wake-up is a
datagram of CRLFs to the edge's own SIP port over UDP, which PJSIP's transport skips as a keep-alive
before any parsing or callback (RFC 5626's ping, sip_transport.c). One lost (a full socket buffer)
costs that work POLL_MS at most. A host firewall may refuse or drop them all (a filter by source on the
SIP port): `fail` says so once, naming the traffic to allow, and the SIP thread polls often again."""

from __future__ import annotations

import logging
import socket
import threading

log = logging.getLogger("sipedge")

POLL_MS = 100
PING = b"\r\n\r\n"
_ANY_TO_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104  (bound to any: reached on loopback)


class SipWake:
    def __init__(self, sip_host: str, sip_port: int) -> None:
        host = _ANY_TO_LOOPBACK.get(sip_host, sip_host)
        # From the edge to itself: the kernel sends from the address it sends to.
        self.traffic = f"UDP from {host} to {host}:{sip_port}"
        self.failed: str | None = None  # why wake-ups do not reach PJSIP, once one did not
        self._failing = threading.Lock()
        # Resolved here, once (the configuration holds an IP address): never on the thread that wakes.
        family, _, _, _, target = socket.getaddrinfo(host, sip_port, type=socket.SOCK_DGRAM)[0]
        self._target: tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes] = target
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def wake(self) -> None:
        """From any thread; never blocks."""
        try:
            self._socket.sendto(PING, self._target)
        except BlockingIOError:  # its buffer is full of wake-ups on their way: PJSIP will see those
            pass
        except OSError as exc:  # a firewall's reject (EPERM), no route: none will arrive
            self.fail(f"a wake-up of the SIP thread could not be sent ({exc})")

    def fail(self, why: str) -> None:
        """Wake-ups do not reach PJSIP: said once; the SIP thread's poll no longer waits for them."""
        with self._failing:
            if self.failed is not None:
                return
            self.failed = why
        log.warning("sipedge: %s: work handed to the SIP thread (answers, hang-ups, transfers) waits for its "
                    "short poll instead, which costs CPU; allow %s (the edge sends to its own SIP port)",
                    why, self.traffic)

    def close(self) -> None:
        self._socket.close()
