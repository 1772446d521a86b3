"""A worker's silence is no proof it is dead: PJSIP drops an INVITE it cannot parse without a word (for a cause the
front does not refuse first: here a stand-in worker's marker). The front, after its wait for the worker's first
answer (sipedge/front_unanswered.py, 1 s), tries one more worker, then answers the trunk's INVITE 408; it
never marks the workers dead for it, so a burst of such INVITEs from a trunk's address (anyone's, over UDP) leaves
the next valid call taken at once, where every worker it reached used to be skipped until its probes answered
again (seconds of 503 to every trunk). Whether a worker lives is its answers to the front's OPTIONS alone."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest

from sipedge.supervisor import KAMAILIO
from tests.sip.kamailio_front import NUMBER, TRUNK, Front, Peer, running_front
from tests.sip.raw_sip import GOOD_SDP

pytestmark = [pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                 reason="Kamailio is not installed (.ci/run installs it)"),
              pytest.mark.slow]  # waits out the front's wait for a worker's answer, twice

UNPARSABLE = "X-Never-Answered: 1\r\n"  # what the stand-in workers keep unanswered, as PJSIP drops what it cannot parse
BURST = 3  # the trunk's share of INVITEs waiting at once (half the two workers' 6 slots): none refused for it
REFUSAL = "486 Busy Here\r\nRetry-After: 17"  # any answer of the worker's, relayed as it gave it
SILENCE_SECONDS = 30.0  # two workers' 1 s each, on a loaded machine


@pytest.fixture(params=[2, 3], ids=["two workers", "three workers"])
def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    with running_front(tmp_path_factory.mktemp("front"), workers=request.param) as running:
        for worker in running.workers:
            worker.answers, worker.drops = (REFUSAL,), UNPARSABLE
        yield running


def invite(trunk: Peer, front: Front, content_type: str = "Content-Type: application/sdp\r\n") -> str:
    call_id = secrets.token_hex(6)
    trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
               extra=(content_type.rstrip(),), body=GOOD_SDP)
    return call_id


def final_answers(trunk: Peer, call_ids: set[str], seconds: float) -> dict[str, str]:
    """Each call's final answer (its status line) as it comes, within `seconds`, each acknowledged."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    while set(found) != call_ids and time.monotonic() < deadline:
        for message in trunk.messages(0.2):
            status = message.split("\r\n", 1)[0]
            call_id = next((c for c in call_ids if f"Call-ID: {c}\r\n" in message), None)
            if call_id is not None and status.startswith("SIP/2.0 ") and not status.startswith("SIP/2.0 1"):
                found.setdefault(call_id, status)
                trunk.send("ACK", f"sip:{NUMBER}@{trunk.front.config.sip_address}", call_id=call_id,
                           to_tag="worker")
    return found


def reached(front: Front, call_id: str) -> int:
    return sum(any(f"Call-ID: {call_id}\r\n" in text for text in worker.received) for worker in front.workers)


def test_a_burst_of_invites_the_workers_drop_leaves_the_next_call_taken_at_once(front: Front) -> None:
    trunk = Peer(TRUNK, front)
    try:
        dropped = {invite(trunk, front, UNPARSABLE) for _ in range(BURST)}
        answers = final_answers(trunk, dropped, SILENCE_SECONDS)
        log = front.log_path.read_text(errors="replace")[-3000:]
        assert set(answers.values()) == {"SIP/2.0 408 Request Timeout"} and set(answers) == dropped, log
        # Each tried on one worker more, not on every one: a malformed INVITE holds a slot for two waits at most.
        assert all(reached(front, call_id) == 2 for call_id in dropped), [w.received for w in front.workers]
        # The next call, right after: a worker takes it (its answer relayed), not the front's "no worker" 503.
        valid = invite(trunk, front)
        answer = final_answers(trunk, {valid}, 5.0)
    finally:
        trunk.close()
    assert answer == {valid: "SIP/2.0 486 Busy Here"}, front.log_path.read_text(errors="replace")[-3000:]
    assert reached(front, valid) == 1


def test_a_workers_own_408_is_its_answer_relayed_not_taken_for_silence(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Only no answer at all (not even 100 Trying) sends the INVITE on: a worker that answers 408 itself has
    answered, and the trunk hears it as it hears any other refusal."""
    with running_front(tmp_path_factory.mktemp("front"), workers=2) as front:
        for worker in front.workers:
            worker.answers = ("408 Request Timeout",)
        trunk = Peer(TRUNK, front)
        try:
            call_id = invite(trunk, front)
            answer = final_answers(trunk, {call_id}, 10.0)
        finally:
            trunk.close()
        assert answer == {call_id: "SIP/2.0 408 Request Timeout"}, front.log_path.read_text(errors="replace")[-3000:]
        assert reached(front, call_id) == 1
