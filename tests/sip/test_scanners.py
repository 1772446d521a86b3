"""What a SIP scanner sends, and a trunk's own odd INVITEs, against `python -m sipedge`: INVITEs with
no SDP or a truncated one, hundreds back to back from a stranger and from the trunk, OPTIONS, and
calls beyond the edge's capacity. The edge answers each and stays up; its log stays short. No bot
is needed: the edge's dispatcher is a port that refuses or never answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.raw_sip import GOOD_SDP, TRUNCATED_SDP, RawSip, status_of
from tests.support.ports import free_port

pytestmark = pytest.mark.slow  # the edge, a real PJSIP process

TRUNK = "127.0.0.1"  # the trunk's source in tests/sip/conftest.py
STRANGER = "127.0.0.2"  # loopback too, but no trunk allows it
UNSERVED = "+14155550000"
ANSWER_SECONDS = 20.0  # generous: the machine may be loaded
BURST = 300
PUBLIC = "192.0.2.10"  # the refusing edge's public address, as a cloud host's translates to its own


def alive(edge: EdgeProcess) -> bool:
    return edge.process.poll() is None


def answer_to(source: str, edge: EdgeProcess, number: str, body: str | None = None) -> str | None:
    sip = RawSip(source, edge.sip_port)
    try:
        sip.invite(number, *(() if body is None else (body,)))
        return sip.final_answer(ANSWER_SECONDS)
    finally:
        sip.close()


@pytest.fixture(scope="module")
def refusing_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """The edge in front of a closed port: an admitted call is refused 503 once it asks. One for the module's
    tests that send an INVITE or two (each is answered alone); the burst's is the silent edge (its sources cool
    down). Behind a cloud address, as test_behind_a_cloud_address_the_edge_binds_its_own_and_names_the_public_one
    says: the others' answers go back where each request came from, whatever the address the edge names."""
    with run_edge(f"http://127.0.0.1:{free_port()}", tmp_path_factory.mktemp("sip-refusing-edge"),
                  settings=f'public_address = "{PUBLIC}"') as running:
        yield running


@pytest.fixture(scope="module")
def silent_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """The edge in front of a dispatcher that takes connections and never answers: an admitted call
    rings until the edge's request times out. The capacity test's, then the burst's (last: its sources cool
    down, and calls beyond the capacity are refused as any other is, 503)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        with run_edge(f"http://127.0.0.1:{silent.getsockname()[1]}", tmp_path_factory.mktemp("sip-silent-edge")) \
                as running:
            yield running


@pytest.mark.parametrize(("source", "number", "body", "status"), [
    (TRUNK, UNSERVED, "", 404), (STRANGER, NUMBER, "", 403), (STRANGER, UNSERVED, TRUNCATED_SDP, 400),
    (TRUNK, UNSERVED, TRUNCATED_SDP, 400),
], ids=["no-sdp-unserved", "no-sdp-stranger", "truncated-stranger", "truncated-unserved"])
def test_an_invite_without_a_usable_offer_is_refused_and_the_edge_stays_up(
    refusing_edge: EdgeProcess, source: str, number: str, body: str, status: int,
) -> None:
    edge = refusing_edge
    answer = answer_to(source, edge, number, body)
    assert answer is not None and status_of(answer) == status, f"{answer}\n{edge.log()}"
    again = answer_to(TRUNK, edge, UNSERVED)  # still serving
    assert again is not None and status_of(again) == 404, edge.log()
    assert alive(edge), edge.log()


def test_a_late_offer_from_the_trunk_rings_then_is_refused_cleanly(refusing_edge: EdgeProcess) -> None:
    edge = refusing_edge
    answer = answer_to(TRUNK, edge, NUMBER, "")
    assert answer is not None and status_of(answer) == 503, f"{answer}\n{edge.log()}"
    assert "Retry-After: " in answer
    assert alive(edge), edge.log()


def test_options_from_anyone_do_not_name_the_software(refusing_edge: EdgeProcess) -> None:
    edge = refusing_edge
    sip = RawSip(STRANGER, edge.sip_port)
    try:
        sip.options(NUMBER)
        answer = sip.final_answer(ANSWER_SECONDS)
    finally:
        sip.close()
    assert answer is not None, edge.log()
    assert "user-agent" not in answer.lower() and "server:" not in answer.lower(), answer
    assert "voicefleet" not in answer.lower() and "pjsip" not in answer.lower(), answer


def test_calls_beyond_the_edges_capacity_are_unavailable_at_once_with_retry_after(
    silent_edge: EdgeProcess,
) -> None:
    ringing = [RawSip(TRUNK, silent_edge.sip_port) for _ in range(2)]
    over = [RawSip(TRUNK, silent_edge.sip_port) for _ in range(2)]
    try:
        for sip in ringing:
            sip.invite(NUMBER)
            assert sip.first_answer(3.0, lambda m: status_of(m) == 180) is not None, silent_edge.log()
        for sip in over:  # together, while the first two still ring
            sip.invite(NUMBER)
        for sip in over:  # refused, not rung first
            answer = sip.first_answer(3.0, lambda m: status_of(m) >= 180)
            assert answer is not None and status_of(answer) == 503, f"{answer}\n{silent_edge.log()}"
            assert "Retry-After: " in answer
        assert alive(silent_edge), silent_edge.log()
    finally:
        for sip in ringing + over:
            sip.close()


# After the capacity test, on its edge (pytest runs a file's tests in this order, on one xdist worker).
def test_hundreds_of_invites_back_to_back_leave_the_edge_up_and_its_log_short(silent_edge: EdgeProcess) -> None:
    edge = silent_edge
    before = len(edge.log().splitlines())
    for source, numbers in ((STRANGER, (NUMBER, UNSERVED)), (TRUNK, (NUMBER, UNSERVED))):
        sip = RawSip(source, edge.sip_port)
        for index in range(BURST):
            sip.invite(numbers[index % 2], ("", TRUNCATED_SDP, GOOD_SDP)[index % 3])
        answers = sip.answers(3.0)
        sip.close()
        assert answers, edge.log()[-3000:]
        assert all(status_of(a) in (100, 180, 400, 403, 404, 486, 503) for a in answers), answers[:5]
    again = answer_to(TRUNK, edge, UNSERVED)
    assert again is not None and status_of(again) == 404, edge.log()[-3000:]
    assert alive(edge), edge.log()[-3000:]
    assert len(edge.log().splitlines()) - before < 60, edge.log()[-3000:]  # counted, not one line each


def test_a_stranger_with_a_calls_ids_cannot_move_its_media_and_no_one_can_transfer_it(
    edge: EdgeProcess,
) -> None:
    answering_edge = edge  # tests/sip/conftest.py's, in front of the parrot
    trunk, stranger = RawSip(TRUNK, answering_edge.sip_port), RawSip(STRANGER, answering_edge.sip_port)
    try:
        dialog = trunk.invite(NUMBER)
        answer = trunk.final_answer(60.0)  # once the parrot's bot has joined
        assert answer is not None and status_of(answer) == 200, f"{answer}\n{answering_edge.log()}"
        dialog = dialog.answered(answer)
        trunk.in_dialog("ACK", NUMBER, dialog, 1)
        elsewhere = GOOD_SDP.replace("127.0.0.1", STRANGER).replace("o=- 1 1", "o=- 1 2")  # a new offer
        stranger.in_dialog("INVITE", NUMBER, dialog, 2, elsewhere)
        moved = stranger.final_answer(ANSWER_SECONDS)
        # Refused (PJSIP turns the edge's 403 into 488, an offer it leaves unanswered); main answered 200.
        assert moved is not None and status_of(moved) in (403, 488), f"{moved}\n{answering_edge.log()}"
        trunk.in_dialog("REFER", NUMBER, dialog, 3, extra="Refer-To: <sip:+19995550100@198.51.100.7>\r\n")
        transferred = trunk.final_answer(ANSWER_SECONDS)
        assert transferred is not None and status_of(transferred) == 603, transferred
        trunk.in_dialog("BYE", NUMBER, dialog, 4)
        assert alive(answering_edge), answering_edge.log()
    finally:
        trunk.close()
        stranger.close()


def test_behind_a_cloud_address_the_edge_binds_its_own_and_names_the_public_one(refusing_edge: EdgeProcess) -> None:
    """On a cloud host the interface holds a private address and the provider translates the public
    one to it: PJSIP binds the first and must name the second in Contact and SDP, or the trunk's
    ACK, BYE and RTP go to an address it cannot reach."""
    running = refusing_edge
    sip = RawSip(TRUNK, running.sip_port)
    try:
        sip.invite(NUMBER)
        ringing = sip.first_answer(ANSWER_SECONDS / 2, lambda a: status_of(a) == 180)
    finally:
        sip.close()
    assert ringing is not None, running.log()
    contact = next(line for line in ringing.split("\r\n") if line.lower().startswith(("contact:", "m:")))
    assert f"@{PUBLIC}:{running.sip_port}" in contact, ringing
    assert alive(running), running.log()
