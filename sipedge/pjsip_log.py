"""PJSIP's own log entries in the edge's log, bounded and kept to PJSIP's words. PJSIP logs an error for each
malformed packet it drops (a missing header, a bad SDP, a Content-Length past the datagram) and follows it with the
packet itself, line by line: any sender could write up to ~4 KB of its own text a datagram into the edge's log,
lines of its choosing (a forged "sipedge: ready") included. So each entry keeps its first line alone, escaped and cut
as Kamailio's lines are (sipedge/log_line.py); the first LOGGED_PER_PERIOD of a period are logged and the
rest only counted, and the period ends with one line of that count (as sipedge/refusal_log.py does for refusals)."""

from __future__ import annotations

import logging
import threading

from sipedge.log_line import shown

log = logging.getLogger("sipedge")

LOGGED_PER_PERIOD = 20
LINE_MOST = 400  # bytes of an entry's line in the edge's log, newline included


def first_line(message: str) -> str:
    """`message`'s first line behind `pjsip: `, escaped and cut to LINE_MOST bytes."""
    line = message.replace("\r", "\n").split("\n", 1)[0].rstrip()
    return shown(b"pjsip: ", line, most=LINE_MOST).decode().rstrip("\n")


class PjsipLog:
    """Written by PJSIP's thread (its LogWriter), its periods ended by the event loop's timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logged = 0
        self._counted = 0

    def write(self, message: str) -> None:
        with self._lock:
            logged = self._logged < LOGGED_PER_PERIOD
            if logged:
                self._logged += 1
            else:
                self._counted += 1
        if logged:
            log.warning("%s", first_line(message))

    def end_period(self) -> None:
        with self._lock:
            counted, self._logged, self._counted = self._counted, 0, 0
        if counted:
            log.warning("sipedge: %d more of PJSIP's log entries this period were only counted", counted)
