"""The edge's Kamailio front (on the kamailio.cfg the edge writes, with stand-in workers) tries its
next worker only on a worker's own "no slot" refusal, and gives every slot back however a call's
tries end: a front that kept the last worker's slot after trying them all would, call by call, take
no more calls at all while its workers sat idle."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest

from sipedge.front_config import worker_capacity
from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import FULL_HEADER
from tests.sip.kamailio_front import NUMBER, TRUNK, Front, Peer, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

FULL = f"503 Service Unavailable\r\nRetry-After: 5\r\n{FULL_HEADER}: 1"  # a worker with no slot left
FOR_THE_DISPATCHER = "486 Busy Here\r\nRetry-After: 17"  # the dispatcher's 429, as a worker passes it on
NO_BOT = "503 Service Unavailable\r\nRetry-After: 7"  # the dispatcher full, its start timed out, no bot in time
RANG = "180 Ringing"


@pytest.fixture
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    with running_front(tmp_path_factory.mktemp("front")) as running:
        yield running


def call(front: Front, trunk: Peer) -> tuple[str, str]:
    """One INVITE from the trunk: its Call-ID and the front's final answer to it, whole."""
    call_id = secrets.token_hex(6)
    trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
               extra=("Content-Type: application/sdp",), body=GOOD_SDP)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for message in trunk.messages(0.2):
            if call_id in message and message.startswith("SIP/2.0 ") and not message.startswith("SIP/2.0 1"):
                trunk.send("ACK", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id, to_tag="worker")
                return call_id, message
    raise AssertionError(f"no final answer to {call_id}\n{front.log_path.read_text(errors='replace')[-3000:]}")


def tried(front: Front, call_id: str) -> int:
    """How many workers the call's INVITE reached."""
    return sum(any(call_id in text and text.startswith("INVITE ") for text in worker.received)
               for worker in front.workers)


def test_full_workers_are_each_tried_and_every_slot_is_given_back(front: Front) -> None:
    for worker in front.workers:
        worker.answers = (FULL,)
    trunk = Peer(TRUNK, front)
    try:
        # More calls than the workers' slots together: a slot kept by a refused call would leave none.
        for _ in range(len(front.workers) * worker_capacity() + 2):
            call_id, answer = call(front, trunk)
            assert answer.startswith("SIP/2.0 503 "), answer
            assert "Retry-After: 5" in answer and FULL_HEADER.lower() not in answer.lower(), answer
            assert wait_for(lambda c=call_id: tried(front, c) == len(front.workers)), front.log_path.read_text()[-3000:]
    finally:
        trunk.close()


@pytest.mark.parametrize("answers", [(FOR_THE_DISPATCHER,), (RANG, NO_BOT), (RANG, FULL)],
                         ids=["dispatchers_refusal", "no_bot", "after_ringing"])
def test_a_refusal_for_the_dispatchers_sake_or_after_ringing_reaches_the_trunk_from_its_one_worker(
    front: Front, answers: tuple[str, ...],
) -> None:
    for worker in front.workers:
        worker.answers = answers
    trunk = Peer(TRUNK, front)
    try:
        call_id, answer = call(front, trunk)
        time.sleep(0.5)  # time enough for a failover, were there one
    finally:
        trunk.close()
    assert answer.split("\r\n", 1)[0] == f"SIP/2.0 {answers[-1].split(chr(13), 1)[0]}", answer
    assert tried(front, call_id) == 1, [w.received for w in front.workers]
    assert f"Retry-After: {answers[-1].rsplit('Retry-After: ', 1)[1].split(chr(13))[0]}" in answer, answer
