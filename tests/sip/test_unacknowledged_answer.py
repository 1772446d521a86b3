"""A call the edge answered that no ACK confirmed: an INVITE spoofed with a trunk's address (its `200 OK` goes to
the real trunk, which never acknowledges it), played here by a raw SIP socket that sends no ACK (or one only after
the edge's BYE), against `python -m sipedge`, its real PJSIP and a real dispatcher. Left to PJSIP, such a call held
its slot and its bot about 64 s (its BYE came 32 s after the 200, and PJSUA's slot waited 32 s more for that BYE's
answer); now the edge ends it ACK_WAIT_SECONDS after its answer (sipedge/ack_wait.py): its bot stops, its session's
end says why, and both the edge's slot and PJSUA's are free for the trunk's next call. A real trunk whose first ACKs
were lost acknowledges a retransmitted 200: its call stays up."""

from __future__ import annotations

import time

import pytest

from sipedge.ack_wait import ACK_WAIT_SECONDS
from tests.phone.conftest import ended_timeline
from tests.sip.conftest import NUMBER, EdgeProcess
from tests.sip.held_call import HeldCall
from tests.sip.raw_sip import Dialog, RawSip, status_of
from tests.sip.test_calls import session_of, sip_ended
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, bot processes importing Pipecat

TRUNK = "127.0.0.1"  # the trunk's source in tests/sip/conftest.py
ANSWER_SECONDS = 45.0  # the edge's answer_seconds there: a bot started cold on a loaded machine
# The edge's BYE, at most this long after the 200 reached the caller: the wait, and a loaded host's lateness.
# PJSIP's own BYE came 32 s after the 200.
BYE_WITHIN = ACK_WAIT_SECONDS + 12.0
SHARE = 2  # the calls one source may hold at once on an edge alone (PJSUA's 4 slots, 1 kept for refusals, less 1)
NO_ACK_LINE = "was answered and never acknowledged"


def is_bye(message: str) -> bool:
    return message.startswith("BYE ")


class Unacknowledged:
    """An INVITE from the trunk's address whose 200 OK is never acknowledged, from a socket of its own."""

    def __init__(self, edge: EdgeProcess) -> None:
        self.edge = edge
        self.sip = RawSip(TRUNK, edge.sip_port)
        self.dialog = self.sip.invite(NUMBER)
        self.answered_at: float | None = None
        self.answer = ""

    def answered(self) -> None:
        answer = self.sip.final_answer(ANSWER_SECONDS)
        assert answer is not None and status_of(answer) == 200, f"{answer}\n{self.edge.log()[-3000:]}"
        self.answered_at, self.answer = time.monotonic(), answer

    def hung_up(self) -> str:
        """The edge's BYE, once it came (its 200 retransmitted meanwhile, never acknowledged)."""
        assert self.answered_at is not None
        bye = self.sip.first_answer(BYE_WITHIN - (time.monotonic() - self.answered_at), is_bye)
        assert bye is not None, f"no BYE within {BYE_WITHIN:g} s of the 200\n{self.edge.log()[-3000:]}"
        return bye


    def acknowledged_late(self) -> None:
        """The ACK after all, once the edge ended the call: a real trunk's, every earlier one lost."""
        self.sip.in_dialog("ACK", NUMBER, self.dialog.answered(self.answer), 1)


def unacknowledged_round(edge: EdgeProcess, late: bool = False) -> list[Unacknowledged]:
    """The trunk's share of calls, answered and not acknowledged, until the edge hung each up; `late`: the first
    acknowledged then."""
    calls = [Unacknowledged(edge) for _ in range(SHARE)]
    try:
        for call in calls:
            call.answered()
        for call in calls:
            call.hung_up()
        if late:
            calls[0].acknowledged_late()
    finally:
        for call in calls:
            call.sip.close()
    return calls


async def test_an_answer_never_acknowledged_ends_its_call_and_frees_its_slots_for_the_trunks_next_call(
    parrot_dispatcher: DispatcherProcess, edge: EdgeProcess,
) -> None:
    """Two rounds of the trunk's share of such calls, each hung up within the wait (PJSIP's own BYE would come after
    32 s; one ACK comes after it), then the trunk's real call is answered: the edge's count of the trunk's calls gave
    them back (else 503), and so did PJSUA (else its own 486: the 4 calls of the two rounds would still hold its 4
    slots, each until its BYE's answer, which never comes)."""
    first = unacknowledged_round(edge, late=True)
    unacknowledged_round(edge)
    held = HeldCall(edge, TRUNK, NUMBER)
    _, answer = held.end()
    assert answer is not None and status_of(answer) == 200, answer
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        session_id = session_of(edge, first[0].dialog.call_id)
        assert session_id is not None, edge.log()[-3000:]
        await ended_timeline(api, session_id)  # its bot was stopped
        assert await sip_ended(api, session_id) == {
            "by": "edge", "how": "failed", "status": 408,
            "reason": f"no ACK within {ACK_WAIT_SECONDS:g} s of the edge's 200 OK"}
    log = edge.log()
    assert log.count(NO_ACK_LINE) == 1, log[-3000:]  # four from one source: logged once, the rest counted


def acknowledged_third(sip: RawSip, dialog: Dialog, edge: EdgeProcess) -> Dialog:
    """The third 200 OK (the second retransmission, 1.5 s after the first) acknowledged, the first two not: the
    dialog as answered."""
    answer: str | None = None
    deadline = time.monotonic() + ANSWER_SECONDS
    for seen in range(3):
        answer = sip.first_answer(deadline - time.monotonic(), lambda message: status_of(message) == 200)
        assert answer is not None, f"{seen} 200 OK seen\n{edge.log()[-3000:]}"
    assert answer is not None
    answered = dialog.answered(answer)
    sip.in_dialog("ACK", NUMBER, answered, 1)
    return answered


async def test_a_call_whose_first_two_acks_were_lost_stays_up(
    parrot_dispatcher: DispatcherProcess, edge: EdgeProcess,
) -> None:
    """Acknowledged late, the call is still up well past the wait, then ends by the trunk's BYE, told as the
    caller's."""
    sip = RawSip(TRUNK, edge.sip_port)
    try:
        dialog = acknowledged_third(sip, sip.invite(NUMBER), edge)
        bye = sip.first_answer(ACK_WAIT_SECONDS + 3.0, is_bye)
        assert bye is None, f"the edge hung up a call it had taken the ACK of: {bye}\n{edge.log()[-3000:]}"
        sip.in_dialog("BYE", NUMBER, dialog, 2)
        answer = sip.final_answer(ANSWER_SECONDS)
        assert answer is not None and status_of(answer) == 200, f"{answer}\n{edge.log()[-3000:]}"
    finally:
        sip.close()
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        session_id = session_of(edge, dialog.call_id)
        assert session_id is not None, edge.log()[-3000:]
        assert await sip_ended(api, session_id) == {"by": "caller", "how": "bye"}
