"""What the edge's Kamailio front refuses to do for a stranger, on the kamailio.cfg the edge writes
(tests/sip/kamailio_front.py: real Kamailio, stand-in workers): relay anything anywhere but to a
worker, believe a source line a sender wrote, lock a trunk out for someone else's flood, or name
its software."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sipedge.front_config import PIKE_REQUESTS_PER_UNIT
from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import SOURCE_HEADER, TOKEN_HEADER, TRANSPORT_HEADER, front_hop_was_tls, true_source
from sipedge.worker_place import Front as WorkerFront
from tests.sip.kamailio_front import NUMBER, STRANGER, TRUNK, Front, Peer, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

FAR_HOST = "127.0.0.77"
TERMINATION_HOST = "127.0.0.78"


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    # The stand-in workers answer no INVITE, and these tests send them faster than the front stops waiting (a cancelled
    # one too waits its second out): the trunk's share of INVITEs waiting (sipedge/front_unanswered.py) never binds.
    with running_front(tmp_path_factory.mktemp("front"), trunk_settings="unanswered_invites = 64") as running:
        yield running


@pytest.fixture
def far_host() -> Iterator[tuple[socket.socket, list[str]]]:
    """A host nobody should reach through the front: what arrives there is kept."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((FAR_HOST, 0))
    got: list[str] = []

    def keep() -> None:
        while True:
            try:
                got.append(sock.recv(65535).decode(errors="replace"))
            except OSError:
                return

    threading.Thread(target=keep, daemon=True).start()
    yield sock, got
    sock.close()


def test_a_strangers_in_dialog_request_with_its_own_route_is_refused_not_relayed(
        front: Front, far_host: tuple[socket.socket, list[str]]) -> None:
    sock, got = far_host
    far = f"{FAR_HOST}:{sock.getsockname()[1]}"
    stranger = Peer(STRANGER, front)
    try:
        for method in ("MESSAGE", "INVITE", "BYE"):
            stranger.send(method, f"sip:{NUMBER}@{far}", call_id=secrets.token_hex(6), to_tag="t1",
                          extra=(f"Route: <sip:{far};lr>",))
            assert stranger.answers() == ["SIP/2.0 403 Forbidden"], method
        # A Route naming the front itself, then a Request-URI elsewhere: the same.
        front_uri = f"{front.config.sip_address}:{front.config.sip_port}"
        stranger.send("BYE", f"sip:{NUMBER}@{far}", call_id=secrets.token_hex(6), to_tag="t1",
                      extra=(f"Route: <sip:{front_uri};lr>",))
        assert stranger.answers() == ["SIP/2.0 403 Forbidden"]
    finally:
        stranger.close()
    assert got == []


def test_a_trunks_in_dialog_request_still_reaches_the_calls_worker(front: Front) -> None:
    trunk = Peer(TRUNK, front)
    worker = front.config.worker_sip_port + 1
    front_uri = f"{front.config.sip_address}:{front.config.sip_port}"
    call_id = secrets.token_hex(6)
    try:
        trunk.send("BYE", f"sip:edge@127.0.0.1:{worker}", call_id=call_id, to_tag="t1",
                   extra=(f"Route: <sip:{front_uri};lr>",))
        assert wait_for(lambda: any(call_id in text for text in front.workers[1].received))
    finally:
        trunk.close()


@pytest.mark.parametrize("method", ["INVITE", "INFO"])
def test_a_trunks_in_dialog_request_past_pjsips_packet_once_relayed_is_answered_513(front: Front, method: str) -> None:
    """Under 4000 bytes as received, past them with the front's own lines: never sent to the worker (which would cut
    it), and answered, as an INVITE outside a call is, rather than left for the trunk to time out."""
    trunk = Peer(TRUNK, front)
    worker = front.config.worker_sip_port + 1
    front_uri = f"{front.config.sip_address}:{front.config.sip_port}"
    call_id = secrets.token_hex(6)
    try:
        trunk.send(method, f"sip:edge@127.0.0.1:{worker}", call_id=call_id, to_tag="t1",
                   extra=(f"Route: <sip:{front_uri};lr>", SDP_TYPE, "Subject: " + "a" * 3350), body=GOOD_SDP)
        finals = [answer for answer in trunk.answers() if not answer.startswith("SIP/2.0 1")]
        assert finals and {answer.split(" ", 2)[1] for answer in finals} == {"513"}, finals
        assert not any(call_id in text for text in front.at_workers())
    finally:
        trunk.close()


def test_a_workers_request_goes_only_to_a_trunk_of_a_call_the_front_knows(
        front: Front, far_host: tuple[socket.socket, list[str]]) -> None:
    sock, got = far_host
    far = f"{FAR_HOST}:{sock.getsockname()[1]}"
    front_uri = f"{front.config.sip_address}:{front.config.sip_port}"
    worker = Peer("127.0.0.1", front)
    worker.sock.close()  # from a worker's own port, as a worker (or whoever took its port) sends
    worker.sock, worker.port = front.workers[0].sock, front.config.worker_sip_port
    worker.send("BYE", f"sip:{NUMBER}@{far}", call_id=secrets.token_hex(6), to_tag="t1",
                extra=(f"Route: <sip:{front_uri};lr>",))
    assert wait_for(lambda: "is not a trunk of a call here" in front.log_path.read_text(errors="replace"))
    assert got == []


def test_a_request_carrying_a_source_line_in_its_body_is_refused_whatever_its_line_ends(front: Front) -> None:
    stranger = Peer(STRANGER, front)
    worker = f"127.0.0.1:{front.config.worker_sip_port}"
    try:
        for eol in ("\n", "\r\n"):
            call_id = secrets.token_hex(6)
            stranger.send("INVITE", f"sip:{NUMBER}@{worker}", call_id=call_id, to_tag="t2", eol=eol,
                          extra=(f"Route: <sip:{worker};lr>", "Content-Type: application/sdp"),
                          body=f"v=0{eol}{SOURCE_HEADER}: {TRUNK}{eol}")
            assert stranger.answers() == ["SIP/2.0 400 Bad Request"], repr(eol)
            assert not any(call_id in text for text in front.at_workers())
    finally:
        stranger.close()


def test_an_invite_whose_contact_is_no_uri_is_refused_by_the_front_not_left_to_a_worker(front: Front) -> None:
    # PJSIP drops such an INVITE without a word: relayed, it would hold a worker's slot for the front's two waits
    # (a trunk's spoofed address sending a few a second would keep every slot taken).
    trunk = Peer(TRUNK, front)
    try:
        call_id = secrets.token_hex(6)
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
                   extra=("Contact: 0", "Content-Type: application/sdp"), body=GOOD_SDP)
        finals = [answer for answer in trunk.answers() if not answer.startswith("SIP/2.0 1")]
        assert [answer.split(" ", 2)[1] for answer in finals] == ["400"], finals
        assert not any(call_id in text for text in front.at_workers())
    finally:
        trunk.close()


SDP_TYPE = "Content-Type: application/sdp"
# The fuzzed corpus' (tests/sip/fuzzed_sip.py) Proxy-Authorization that PJSIP's parser fails on: a realm of \x02.
CONTROL_CREDENTIAL = ('Proxy-Authorization: Digest username="pbx", realm=\x02voicefleet", nonce="bm9uY2U=", '
                      f'uri="sip:{NUMBER}@127.0.0.1", response="00000000000000000000000000000000", algorithm=MD5')


def values(name: str, count: int, prefix: str = "v") -> str:
    return f"{name}: " + ", ".join(f"{prefix}{index}" for index in range(count))


@pytest.mark.parametrize(("extra", "uri_user", "status"), [
    (("Content-Type: application",), NUMBER, "400"),  # no subtype
    ((SDP_TYPE,), NUMBER + "1" * 600, "414"),  # a Request-URI past any number's
    ((SDP_TYPE, values("Accept", 33)), NUMBER, "400"),  # PJSIP holds 32 values of a list header
    ((SDP_TYPE, values("Require", 20), values("Require", 13, "w")), NUMBER, "400"),  # its lines' values together
    ((SDP_TYPE, values("k", 40)), NUMBER, "400"),  # Supported's compact form
    ((SDP_TYPE, CONTROL_CREDENTIAL), NUMBER, "400"),
    ((SDP_TYPE, "Subject: a\x1b[2Jb"), NUMBER, "400"),  # a control character in any header
    ((SDP_TYPE, "Subject: a\rb"), NUMBER, "400"),  # a bare CR, which ends PJSIP's line
    ((SDP_TYPE, "Subject: a\x7fb"), NUMBER, "400"),
    ((SDP_TYPE, "Subject: a\x00b"), NUMBER, "400"),  # a NUL, which Kamailio's regular expressions never see
    ((SDP_TYPE, "Allow: INVITE,,ACK"), NUMBER, "400"),  # an empty value in a list
    ((SDP_TYPE, "Allow: INVITE, ACK, "), NUMBER, "400"),
    ((SDP_TYPE, "Subject: " + "a" * 4100), NUMBER, "513"),  # past PJSIP's 4000 bytes as received
    ((SDP_TYPE, "Subject: " + "a" * 3350), NUMBER, "513"),  # under them as received, past them as relayed
], ids=["content-type-without-subtype", "request-uri-too-long", "accept-of-33-values", "require-of-33-values",
        "supported-of-40-values", "credential-with-a-control-byte", "escape-in-a-header", "bare-cr-in-a-header",
        "delete-in-a-header", "nul-in-a-header", "empty-value-in-a-list", "trailing-comma-in-a-list",
        "over-4000-bytes", "over-4000-bytes-once-relayed"])
def test_an_invite_pjsip_would_drop_unanswered_is_refused_by_the_front(
        front: Front, extra: tuple[str, ...], uri_user: str, status: str) -> None:
    """Each held a worker's slot for the front's waits, unanswered (tests/sip/test_pjsip_silent_drops.py shows
    PJSIP's silence for each kind)."""
    trunk = Peer(TRUNK, front)
    try:
        call_id = secrets.token_hex(6)
        trunk.send("INVITE", f"sip:{uri_user}@{front.config.sip_address}", call_id=call_id, extra=extra,
                   body=GOOD_SDP)
        finals = [answer for answer in trunk.answers() if not answer.startswith("SIP/2.0 1")]
        assert finals and {answer.split(" ", 2)[1] for answer in finals} == {status}, finals  # a stateful one: again
        assert not any(call_id in text for text in front.at_workers())
    finally:
        trunk.close()


@pytest.mark.parametrize("extra", [
    ("Content-Type: application/sdp;charset=UTF-8",),
    (SDP_TYPE, values("Accept", 32)),
    (SDP_TYPE, values("Require", 16), values("Require", 16, "w")),
    (SDP_TYPE, values("Accept", 20), values("Accept", 20, "w")),  # each Accept line a list of its own
    (SDP_TYPE, "Accept:", "Allow: INVITE,\r\n ACK"),  # an empty list; a list folded after a comma
    (SDP_TYPE, "Subject: a\tb"),  # HT is white space, not a control character to SIP
    (SDP_TYPE, "Subject:\r\n folded"),
    (SDP_TYPE, "Subject: " + "a" * 3000),  # under PJSIP's 4000 bytes once relayed
], ids=["content-type-with-parameters", "accept-of-32-values", "require-of-32-values", "two-accepts-of-20-values",
        "empty-and-folded-lists", "tab-in-a-header", "folded-header", "a-large-request"])
def test_what_pjsip_parses_still_reaches_a_worker(front: Front, extra: tuple[str, ...]) -> None:
    trunk = Peer(TRUNK, front)
    uri = f"sip:{NUMBER}@{front.config.sip_address}"
    try:
        call_id = secrets.token_hex(6)
        trunk.send("INVITE", uri, call_id=call_id, extra=extra, body=GOOD_SDP)
        assert wait_for(lambda: any(call_id in text for text in front.at_workers()), 10.0), trunk.answers(0.2)
        trunk.send("CANCEL", uri, call_id=call_id, same_branch=True)  # its slot given back for the next case's
    finally:
        trunk.close()


def test_a_flood_from_a_trunks_address_is_answered_503_and_never_locks_the_trunk_out(front: Front) -> None:
    flood, trunk = Peer(TRUNK, front), Peer(TRUNK, front)
    try:
        for _ in range(3 * PIKE_REQUESTS_PER_UNIT):  # pike's limit thrice over, at once
            flood.send("OPTIONS", f"sip:{front.config.sip_address}", call_id=secrets.token_hex(6))
        answers = flood.answers(2.0)
        assert "SIP/2.0 503 Service Unavailable" in answers, answers[:5]  # answered, not dropped
        time.sleep(1.5)  # the trunk's pipe is counted a second at a time
        call_id = secrets.token_hex(6)
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
                   extra=("Content-Type: application/sdp",), body=GOOD_SDP)
        assert wait_for(lambda: any(call_id in text for text in front.at_workers())), trunk.answers(0.2)
    finally:
        flood.close()
        trunk.close()


def test_the_fronts_answers_name_no_software(front: Front) -> None:
    trunk = Peer(TRUNK, front)
    try:
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=secrets.token_hex(6),
                   extra=("Content-Type: application/sdp",), body=GOOD_SDP)
        trunk.send("OPTIONS", f"sip:{front.config.sip_address}", call_id=secrets.token_hex(6))
        got = trunk.messages(1.0)
    finally:
        trunk.close()
    assert "SIP/2.0 100 Trying" in [message.split("\r\n", 1)[0] for message in got], got
    assert not [message for message in got if "kamailio" in message.lower() or "your call is important" in message]


def test_a_workers_bye_for_a_call_the_front_brought_reaches_the_trunk(front: Front) -> None:
    trunk = Peer(TRUNK, front)
    call_id = secrets.token_hex(6)
    front_uri = f"{front.config.sip_address}:{front.config.sip_port}"
    try:
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
                   extra=("Content-Type: application/sdp",), body=GOOD_SDP)
        assert wait_for(lambda: any(call_id in text for text in front.at_workers()))
        worker = next(w for w in front.workers if any(call_id in text for text in w.received))
        bye = (f"BYE sip:caller@{TRUNK}:{trunk.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{worker.sock.getsockname()[1]};branch=z9hG4bK{call_id}bye\r\n"
               f"Route: <sip:{front_uri};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:{NUMBER}@127.0.0.1>;tag=edge\r\n"
               f"To: <sip:+14155550100@{TRUNK}>;tag=caller\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n"
               "Content-Length: 0\r\n\r\n")
        worker.sock.sendto(bye.encode(), front.address)
        assert any(message.startswith("BYE ") and call_id in message for message in trunk.messages(2.0))
    finally:
        trunk.close()


def _at_a_worker(front: Front, call_id: str) -> tuple[str, str]:
    """The request of `call_id` a worker received, and from where."""
    def found() -> list[tuple[str, str]]:
        return [(worker.senders[i], text) for worker in front.workers for i, text in enumerate(worker.received)
                if call_id in text]
    assert wait_for(lambda: found() != []), front.log_path.read_text(errors="replace")[-2000:]
    return found()[0]


def test_a_worker_believes_the_fronts_lines_and_not_a_local_process_bound_to_its_address(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A trunk's INVITE reaches a worker with the front's lines and its token (the sender's own token line
    removed); a process on the host that binds the front's own address too (Kamailio's socket has
    SO_REUSEADDR) and sends a worker the same lines is not believed: it cannot know the token. A front
    of its own: the module's has its workers' slots taken by the INVITEs before."""
    with running_front(tmp_path_factory.mktemp("token")) as front:
        _front_and_forger(front)


def _front_and_forger(front: Front) -> None:
    believing = WorkerFront(f"{front.config.sip_address}:{front.config.sip_port}", front.token)
    trunk = Peer(TRUNK, front)
    call_id = secrets.token_hex(6)
    try:
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
                   extra=("Content-Type: application/sdp", f"{TOKEN_HEADER}: guessed"), body=GOOD_SDP)
        sender, relayed = _at_a_worker(front, call_id)
    finally:
        trunk.close()
    assert sender == believing.address and true_source(sender, relayed, believing) == f"{TRUNK}:0"
    assert "guessed" not in relayed and relayed.count(f"{TOKEN_HEADER}: {front.token}") == 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
        forger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        forger.bind(front.address)  # the front's own address, beside Kamailio
        forged_id = secrets.token_hex(6)
        forger.sendto((f"INVITE sip:{NUMBER}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {believing.address};branch=z9hG4bK"
                       f"{forged_id}\r\nFrom: <sip:a@{TRUNK}>;tag=1\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\n"
                       f"Call-ID: {forged_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{SOURCE_HEADER}: {TRUNK}\r\n"
                       f"{TRANSPORT_HEADER}: tls\r\n{TOKEN_HEADER}: guessed\r\nContent-Length: 0\r\n\r\n").encode(),
                      ("127.0.0.1", front.config.worker_sip_port))
        sender, forged = _at_a_worker(front, forged_id)
    assert sender == believing.address  # the worker cannot tell it apart by its source
    assert true_source(sender, forged, believing) == sender and not front_hop_was_tls(sender, forged, believing)


def test_a_workers_own_call_goes_to_a_trunks_termination_and_nowhere_else(
        tmp_path_factory: pytest.TempPathFactory, far_host: tuple[socket.socket, list[str]]) -> None:
    """A worker's INVITE with no To tag (an outbound call, a person bridged) leaves through the front to a
    trunk's termination, the front recording its route; to any other host it is refused 403, never relayed."""
    sock, got = far_host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as termination:
        termination.bind((TERMINATION_HOST, 0))
        termination.settimeout(3.0)
        port = termination.getsockname()[1]
        trunk = (f'[[trunk]]\nname = "far"\ntermination_uri = "sip:{TERMINATION_HOST}:{port}"\n'
                 'callers = ["team-a"]\n')
        with running_front(tmp_path_factory.mktemp("termination"), trunk) as front:
            worker = Peer("127.0.0.1", front)
            worker.sock.close()  # from a worker's own port
            worker.sock, worker.port = front.workers[0].sock, front.config.worker_sip_port
            elsewhere, called = secrets.token_hex(6), secrets.token_hex(6)
            worker.send("INVITE", f"sip:+14155550100@{FAR_HOST}:{sock.getsockname()[1]}", call_id=elsewhere,
                        extra=(f"Route: <sip:{front.config.sip_address}:{front.config.sip_port};lr>",
                               f"{TOKEN_HEADER}: {front.call_token}"))
            assert wait_for(lambda: f"INVITE {elsewhere} from worker" in front.log_path.read_text(errors="replace")
                            and "is not a trunk's termination" in front.log_path.read_text(errors="replace"))
            worker.send("INVITE", f"sip:+14155550100@{TERMINATION_HOST}:{port}", call_id=called,
                        extra=(f"Route: <sip:{front.config.sip_address}:{front.config.sip_port};lr>",
                               f"{TOKEN_HEADER}: {front.call_token}"))
            relayed = termination.recv(65535).decode(errors="replace")
            # The far end's BYE, even one that ignores the recorded route, comes back to that worker.
            bye = (f"BYE sip:edge@{front.config.sip_address}:{front.config.sip_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {TERMINATION_HOST}:{port};branch=z9hG4bK{called}bye\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:+14155550100@{TERMINATION_HOST}>;tag=far\r\nTo: <sip:{NUMBER}@127.0.0.1>;tag=caller\r\n"
                   f"Call-ID: {called}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
            termination.sendto(bye.encode(), front.address)
            assert wait_for(lambda: any(text.startswith("BYE ") and called in text
                                        for text in front.workers[0].received)), front.log_path.read_text()[-2000:]
    assert relayed.startswith(f"INVITE sip:+14155550100@{TERMINATION_HOST}:{port} ") and called in relayed
    assert f"Record-Route: <sip:{front.config.sip_address}:{front.config.sip_port};lr" in relayed, relayed
    assert got == []


def test_a_trunks_keep_alive_is_answered_200_whatever_pjsip_would_make_of_it(front: Front) -> None:
    """The front answers an OPTIONS itself and no worker's PJSIP reads it: what PJSIP would drop (an empty list value,
    33 values) gets the keep-alive's 200, never a 400 that a carrier reads as the edge being down."""
    trunk = Peer(TRUNK, front)
    try:
        for extra in (("Allow: INVITE, ACK, BYE,",), ("Supported: " + ", ".join(f"x{n}" for n in range(33)),)):
            trunk.send("OPTIONS", f"sip:{front.config.sip_address}", call_id=secrets.token_hex(6), extra=extra)
            assert trunk.answers(1.0) == ["SIP/2.0 200 OK"], extra
    finally:
        trunk.close()
