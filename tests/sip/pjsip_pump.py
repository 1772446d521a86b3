"""What the in-process PJSUA2 probes share: turning PJSUA's event loop while reading a raw UDP socket."""

from __future__ import annotations

import socket
import time

import pjsua2 as pj


def pump(endpoint: pj.Endpoint, sock: socket.socket, seconds: float) -> list[str]:
    """The SIP messages `sock` received while PJSUA handled its events for `seconds` (the socket has a
    short timeout of its own, so neither side starves the other)."""
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        endpoint.libHandleEvents(20)
        try:
            got.append(sock.recv(65535).decode())
        except OSError:
            pass
    return got
