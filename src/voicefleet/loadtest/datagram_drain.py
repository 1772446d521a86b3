"""A caller's UDP sockets read in bursts: asyncio reads one datagram each time its loop finds a socket
readable, so a caller whose loop turn takes longer than the 20 ms between two of a bot's audio packets
(a process short of CPU, several calls in it) reads them slower than they come and falls behind for
good: three calls in one caller beside busy processes (load 8 on 2 cores) heard the bot's audio 13 s
after it was sent, its bot host keeping time. Reading up to DATAGRAMS_PER_TURN at once, as the mic
sends its blocks (webrtc.py's CATCH_UP_BLOCKS), kept it within 2 s at a load of 15 (docs/evals.md,
"How the caller hears the bot")."""

from __future__ import annotations

from asyncio import selector_events
from typing import Any

DATAGRAMS_PER_TURN = 32  # 0.64 s of one call's audio packets: a loop turn that long still keeps up

_TRANSPORT: Any = getattr(selector_events, "_SelectorDatagramTransport", None)


def _read_ready(self: Any) -> None:
    """asyncio's own read of a readable datagram socket (Python 3.11's), repeated until it is empty."""
    for _ in range(DATAGRAMS_PER_TURN):
        if self._conn_lost:
            return
        try:
            data, addr = self._sock.recvfrom(self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
            return
        self._protocol.datagram_received(data, addr)


def read_in_bursts() -> None:
    """Every UDP transport this process opens from now on reads in bursts (a loop without asyncio's
    selector transport, such as uvloop's, is left as it is)."""
    if _TRANSPORT is not None and hasattr(_TRANSPORT, "_read_ready"):
        _TRANSPORT._read_ready = _read_ready
