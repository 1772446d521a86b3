"""Each registering trunk's registration as its registrar last answered it, for the edge's `GET /status`
(sipedge/edge_status.py). PJSUA tells it on the SIP thread (`onRegState`); the event loop reads it: a
lock held for a dict's copy, never a PJSIP call, so reading it never waits on the SIP thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass

REASON_CHARS = 80  # the registrar's reason phrase, as shown: a registrar's text, bounded
# What comes after a REGISTER PJSUA did not send, said with its reason (docs/sip.md#is-the-edge-up)
ASKS_AGAIN = "the edge asks again"
FIX_REGISTRAR = "fix the registrar, restart"


@dataclass(frozen=True)
class Registration:
    # "registering" (no answer yet), "registered", "unregistered" (its registration ended: the edge stopping),
    # "refused" (the registrar's code, or PJSIP's own 408 or 503 when none answered), "failed" (PJSUA gave up
    # before sending a REGISTER: `status` is its pj_status_t, `reason` its text and what comes next: the edge
    # asking again, or the registrar to fix in the edge's file)
    state: str
    code: int | None = None
    reason: str | None = None
    status: int | None = None


REGISTERING = Registration("registering")  # asked, no answer yet


class Registrations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_trunk: dict[str, Registration] = {}

    def answered(self, trunk: str, code: int, reason: str, expiration: int) -> None:
        """On the SIP thread: the registrar's (or PJSIP's own) answer to a REGISTER of `trunk`'s."""
        shown = _shown(reason)
        if 200 <= code < 300:
            state = Registration("registered" if expiration > 0 else "unregistered", code, shown)
        else:
            state = Registration("refused", code, shown)
        with self._lock:
            self._by_trunk[trunk] = state

    def gave_up(self, trunk: str, status: int, reason: str, asks_again: bool) -> None:
        """On the SIP thread: PJSUA did not send `trunk`'s REGISTER (its `pj.Error` raised, no `onRegState`
        telling it), and the edge asks again (`asks_again`), or not until its file is fixed."""
        way = ASKS_AGAIN if asks_again else FIX_REGISTRAR
        state = Registration("failed", None, f"{_shown(reason, REASON_CHARS - len(way) - 2)}; {way}", status)
        with self._lock:
            self._by_trunk[trunk] = state

    def of(self, trunk: str) -> Registration:
        with self._lock:
            return self._by_trunk.get(trunk, REGISTERING)


def _shown(reason: str, chars: int = REASON_CHARS) -> str:
    return "".join(c if c.isprintable() else "?" for c in reason[:chars])
