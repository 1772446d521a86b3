"""INVITEs sent from a trunk's address (anyone's, over UDP) that a worker drops without a word, for a cause the front
cannot see (here a stand-in worker's marker): what they may hold of the edge's slots, on the kamailio.cfg the edge
writes (tests/sip/kamailio_front.py: real Kamailio, two stand-in workers of 3 slots). Each such INVITE held a slot
for the front's two waits of 3 s, so one a second kept every slot taken and every real call got 503. Now the front
waits a second for a worker's first answer (sipedge/front_unanswered.py), and a trunk's INVITEs waiting at once are
capped at its share of the slots (half of them by default), so another trunk's call always finds one."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.supervisor import KAMAILIO
from tests.sip.kamailio_front import NUMBER, TRUNK, Front, Peer, running_front
from tests.sip.raw_sip import GOOD_SDP

pytestmark = [pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                 reason="Kamailio is not installed (.ci/run installs it)"),
              pytest.mark.slow]  # seconds of bursts, and the front's waits

DROPPED = "X-Never-Answered: 1"  # the stand-in workers keep an INVITE holding this unanswered, as PJSIP drops one
OTHER_TRUNK, OTHER_NUMBER = "127.0.0.21", "+14155550198"
OTHER = f'\n[[trunk]]\nname = "other"\nsources = ["{OTHER_TRUNK}/32"]\nnumbers = {{ "{OTHER_NUMBER}" = "" }}\n'
SLOTS = 6  # two workers of 3
ANSWER_SECONDS = 10.0  # the real call's answer, on a loaded machine


def front_with(folder: Path, trunk_settings: str) -> Iterator[Front]:
    with running_front(folder, trunk_settings=trunk_settings + OTHER) as front:
        for worker in front.workers:
            worker.answers, worker.drops = ("200 OK",), DROPPED
        yield front


class Burst:
    """Dropped INVITEs from `host`, `first` at once and then `rate` a second for `seconds`, on a thread of its own;
    every answer the front gave them is kept."""

    def __init__(self, host: str, front: Front, first: int, rate: float, seconds: float) -> None:
        self.peer, self.front = Peer(host, front), front
        self.first, self.rate, self.seconds = first, rate, seconds
        self.statuses: list[str] = []
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._done = threading.Event()

    def __enter__(self) -> Burst:
        self._reader.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._reader.join()
        self.peer.close()

    def _invite(self) -> None:
        self.peer.send("INVITE", f"sip:{NUMBER}@{self.front.config.sip_address}", call_id=secrets.token_hex(6),
                       extra=("Content-Type: application/sdp", DROPPED), body=GOOD_SDP)

    def _send(self) -> None:
        for _ in range(self.first):
            self._invite()
        started = time.monotonic()
        sent = 0
        while not self._done.is_set() and (elapsed := time.monotonic() - started) < self.seconds:
            if elapsed >= (sent + 1) / self.rate:
                self._invite()
                sent += 1
            time.sleep(0.01)

    def _read(self) -> None:
        while not self._done.is_set():
            self.statuses += self.peer.answers(0.2)


def call(host: str, number: str, front: Front) -> str:
    """A real call's INVITE from `host` to `number`: the front's final answer's status line ("" for none)."""
    peer = Peer(host, front)
    call_id = secrets.token_hex(6)
    try:
        peer.send("INVITE", f"sip:{number}@{front.config.sip_address}", call_id=call_id,
                  extra=("Content-Type: application/sdp",), body=GOOD_SDP)
        deadline = time.monotonic() + ANSWER_SECONDS
        while time.monotonic() < deadline:
            for message in peer.messages(0.2):
                status = message.split("\r\n", 1)[0]
                if f"Call-ID: {call_id}\r\n" in message and not status.startswith("SIP/2.0 1"):
                    return status
        return ""
    finally:
        peer.close()


@pytest.fixture
def shared_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """The trunk's share of INVITEs waiting at once: the default, half the slots."""
    yield from front_with(tmp_path_factory.mktemp("front"), "")


@pytest.fixture
def unshared_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """The trunk may have every slot's INVITE waiting at once: only the front's wait for an answer bounds them."""
    yield from front_with(tmp_path_factory.mktemp("front"), f"unanswered_invites = {SLOTS}\n")


def test_a_dropped_invite_holds_its_slot_about_two_seconds_not_six(unshared_front: Front) -> None:
    """Every slot taken at once, then one a second more (the rate that kept them all taken): 4 s on, the trunk's
    real call finds a slot (the first ones were answered 408 after a second on each of two workers)."""
    front = unshared_front
    with Burst(TRUNK, front, first=SLOTS, rate=1.0, seconds=6.0) as burst:
        time.sleep(4.0)
        answer = call(TRUNK, NUMBER, front)
        log = front.log_path.read_text(errors="replace")[-3000:]
        assert answer == "SIP/2.0 200 OK", f"{answer!r} {burst.statuses}\n{log}"
        assert "SIP/2.0 408 Request Timeout" in burst.statuses, burst.statuses


def test_a_spoofed_trunks_dropped_invites_hold_its_share_and_leave_another_trunks_call_a_slot(
        shared_front: Front) -> None:
    """20 a second (each would hold a slot 2 s: 40 for 6 slots), from the trunk's address: past the trunk's 3
    waiting, its INVITEs are answered 503, and the other trunk's call meanwhile is answered."""
    front = shared_front
    with Burst(TRUNK, front, first=0, rate=20.0, seconds=4.0) as burst:
        time.sleep(2.0)
        answer = call(OTHER_TRUNK, OTHER_NUMBER, front)
        log = front.log_path.read_text(errors="replace")[-3000:]
        assert answer == "SIP/2.0 200 OK", f"{answer!r}\n{log}"
    assert "SIP/2.0 503 Service Unavailable" in burst.statuses, burst.statuses
    log = front.log_path.read_text(errors="replace")
    assert "503 from 127.0.0.20: its trunk's share of invites waits for a worker's first answer" in log, log[-3000:]
