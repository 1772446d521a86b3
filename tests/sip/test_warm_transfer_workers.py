"""A warm transfer with several workers: Kamailio in front of two real PJSIP workers, a real dispatcher
running the briefing bot, SIPp as the trunk's caller and as the person (tests/sip/test_warm_transfer.py).
The edge's one control API passes the transfer to the worker holding the call; that worker calls the person
through the front (its only way to the trunk's termination), tells the dispatcher each step, and each side
hears what it should: the caller the hold tones, the person the bot's briefing, then the caller."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.sip.test_warm_transfer import Line, held_briefed_bridged, warm_line

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, two workers, two SIPps, a bot importing Pipecat


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    with warm_line(tmp_path_factory, workers=2) as started:
        yield started


async def test_a_warm_transfer_through_a_worker_briefs_the_person_called_through_the_front(line: Line) -> None:
    session_id = await held_briefed_bridged(line)
    log = line.edge.log()
    holder = re.findall(rf"\[worker (\d+)\] .*answered \(session {session_id}\)", log)
    assert holder, log[-6000:]
    assert re.search(rf"\[worker {holder[0]}\] .*session {session_id} warm-transferred to ", log), log[-6000:]
    assert "is not a trunk's termination" not in log
    # The person's SIPp got the worker's INVITE from the front, which recorded its route.
    person = (line.edge.workdir / "callee_answers.messages").read_text(errors="replace")
    invite = person[person.index("INVITE sip:"):]
    assert re.search(rf"^Record-Route: <sip:127\.0\.0\.1:{line.edge.sip_port};lr", invite, re.MULTILINE), invite[:2000]

