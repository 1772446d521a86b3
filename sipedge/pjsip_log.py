"""PJSIP's own log entries in the edge's log, bounded and kept to PJSIP's words. PJSIP logs an error for each
malformed packet it drops (a missing header, a bad SDP, a Content-Length past the datagram) and follows it with the
packet itself, line by line: any sender could write up to ~4 KB of its own text a datagram into the edge's log,
lines of its choosing (a forged "sipedge: ready") included. So each entry keeps its first line alone, escaped and cut
as Kamailio's lines are (sipedge/log_line.py). Each of PJSIP's source files that logs (the entry's sender:
`sip_endpoint.c` for a dropped packet, `pjsua_media.c` for a media failure) has LOGGED_PER_PERIOD entries a period
logged, the rest only counted, so a flood of bad packets cannot hide a real error of another part under a count;
the period ends with one line of those counts (as sipedge/refusal_log.py does for refusals)."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter

from sipedge.log_line import shown

log = logging.getLogger("sipedge")

LOGGED_PER_PERIOD = 10  # entries logged in full per sender and period
MOST_SENDERS = 16  # senders counted apart per period (PJSIP has a few dozen files that log); the rest as one
OTHER = "other"
LINE_MOST = 400  # bytes of an entry's line in the edge's log, newline included
# An entry as PJSIP decorates it: its time, then the file that logged it (`09:39:49.717  sip_endpoint.c  Error …`).
_SENDER = re.compile(r"\s*\d\d:\d\d:\d\d\.\d{3}\s+([A-Za-z0-9_.-]{1,40}\.c(?:pp)?)\s")


def first_line(message: str) -> str:
    """`message`'s first line behind `pjsip: `, escaped and cut to LINE_MOST bytes."""
    line = message.replace("\r", "\n").split("\n", 1)[0].rstrip()
    return shown(b"pjsip: ", line, most=LINE_MOST).decode().rstrip("\n")


def sender_of(message: str) -> str:
    """The PJSIP source file that logged `message`, or OTHER when it names none."""
    found = _SENDER.match(message)
    return found.group(1) if found else OTHER


class PjsipLog:
    """Written by PJSIP's thread (its LogWriter), its periods ended by the event loop's timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logged: Counter[str] = Counter()
        self._counted: Counter[str] = Counter()

    def write(self, message: str) -> None:
        sender = sender_of(message)
        with self._lock:
            if sender not in self._logged and len(self._logged) >= MOST_SENDERS:
                sender = OTHER
            logged = self._logged[sender] < LOGGED_PER_PERIOD
            if logged:
                self._logged[sender] += 1
            else:
                self._counted[sender] += 1
        if logged:
            log.warning("%s", first_line(message))

    def end_period(self) -> None:
        with self._lock:
            counted, self._logged, self._counted = self._counted, Counter(), Counter()
        if counted:
            each = ", ".join(f"{sender} {count}" for sender, count in counted.most_common())
            log.warning("sipedge: %d more of PJSIP's log entries this period were only counted (%s)",
                        sum(counted.values()), each)
