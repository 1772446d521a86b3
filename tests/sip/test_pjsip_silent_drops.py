"""What PJSIP (2.15.1, the workers') drops without a word, and the front's refusal of it before any worker sees it
(sipedge/front_unparsable.py), with real PJSIP workers behind real Kamailio. PJSIP drops a request whole when one
header fails its parser: a list header past its 32 values (Require's lines counted together), a Proxy-Authorization
with a control byte (the fuzzed corpus' two). Relayed, each held a worker's slot until the front gave up waiting;
sent from a trunk's address (anyone's, over UDP) a few a second, they kept every slot taken. The front now answers
them 400 at once: the trunk's real call meanwhile is answered. What PJSIP drops for causes the front's rules do not
name (a Session-Expires that is no number, a port past 65535...) the worker answers 400 itself behind the front."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from bench.sip_capacity import FakeDispatcher
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.fake_dispatcher_thread import serving_fake
from tests.sip.held_call import HeldCall
from tests.sip.raw_sip import Dialog, RawSip, status_of

pytestmark = pytest.mark.slow  # the edge, real PJSIP and Kamailio processes

TRUNK = "127.0.0.1"  # tests/sip/conftest.py's trunk
UNSERVED = "+14155550000"  # what PJSIP parses is answered (the edge's 404, PJSIP's 420), no session started


def values(name: str, count: int, prefix: str = "v") -> str:
    return f"{name}: " + ", ".join(f"{prefix}{index}" for index in range(count)) + "\r\n"


def credential(realm: str) -> str:
    return (f'Proxy-Authorization: Digest username="pbx", realm={realm}, nonce="bm9uY2U=", uri="sip:{UNSERVED}@'
            'x", response="00000000000000000000000000000000", algorithm=MD5\r\n')


# Each dropped head, and its twin PJSIP parses and answers.
DROPPED_AND_PARSED = {
    "accept": (values("Accept", 33), values("Accept", 32)),
    "require": (values("Require", 20) + values("Require", 13, "w"), values("Require", 16) + values("Require", 16, "w")),
    "empty-value": ("Allow: INVITE,,ACK\r\n", "Allow: INVITE, ACK\r\n"),
    "trailing-comma": ("Allow: INVITE,\r\n", "Allow: INVITE\r\n"),
    "credential": (credential('\x02voicefleet"'), credential('"voicefleet"')),
    "nul": ("Subject: a\x00b\r\n", "Subject: a\x01b\r\n"),  # PJSIP takes SOH in a header it does not parse
    "bare-cr": ("Subject: a\rb\r\n", "Subject: a\tb\r\n"),
}
# What PJSIP drops as well and the front's rules do not name (PJSIP parses some thirty headers, each with causes of its
# own): behind the front, the worker answers it 400 itself (sipedge/unparsed_reply.py). Each with its parsed twin.
UNNAMED_AND_PARSED = {
    "session-expires": ("Session-Expires: soon\r\n", "Session-Expires: 1800\r\n"),
    "event": ("Event: ;id=1\r\n", "Event: refer;id=1\r\n"),
    "record-route-port": ("Record-Route: <sip:127.0.0.9:99999;lr>\r\n", "Record-Route: <sip:127.0.0.9:5060;lr>\r\n"),
    "via-ttl": ("Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKx;ttl=999\r\n",
                "Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKx;ttl=9\r\n"),
    "www-authenticate": ("WWW-Authenticate: garbage\r\n", 'WWW-Authenticate: Digest realm="x", nonce="y"\r\n'),
}
PACKET_BYTES = 4000  # PJSIP's buffer for a datagram
BURST_RATE, BURST_SECONDS = 20.0, 4.0  # each INVITE relayed would have held a slot 2 s: 40 held, for 6 slots
# The trunk's call: half-way through the first relayed INVITEs' two waits of a second, when (were they relayed) the
# trunk's share of INVITEs waiting would be taken, rather than at their end, when it frees for a moment.
CALL_AT_SECONDS = 1.5


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDispatcher]:
    with serving_fake() as serving:
        yield serving


@pytest.fixture(scope="module")
def lone_worker(fake: FakeDispatcher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(f"http://127.0.0.1:{fake.port}", tmp_path_factory.mktemp("sip-lone")) as running:
        yield running


@pytest.fixture(scope="module")
def fronted(fake: FakeDispatcher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(f"http://127.0.0.1:{fake.port}", tmp_path_factory.mktemp("sip-fronted"), workers=2) as running:
        yield running


@pytest.mark.parametrize("kind", [*DROPPED_AND_PARSED, *UNNAMED_AND_PARSED])
def test_pjsip_drops_each_without_a_word_and_answers_its_twin(lone_worker: EdgeProcess, kind: str) -> None:
    """PJSIP alone (one worker, no front): the limits the front's rules follow are PJSIP's own, and so are the
    causes they do not name."""
    dropped, parsed = {**DROPPED_AND_PARSED, **UNNAMED_AND_PARSED}[kind]
    sip = RawSip(TRUNK, lone_worker.sip_port)
    try:
        sip.invite(UNSERVED, extra=dropped)
        assert sip.answers(2.0) == [], kind
        sip.invite(UNSERVED, extra=parsed)
        answer = sip.final_answer(10.0)
    finally:
        sip.close()
    assert answer is not None and status_of(answer) in (404, 420), f"{answer}\n{lone_worker.log()[-3000:]}"


@pytest.mark.parametrize("kind", UNNAMED_AND_PARSED)
def test_behind_the_front_the_worker_answers_400_what_its_pjsip_drops(fronted: EdgeProcess, kind: str) -> None:
    """Not the front's 408 once it gave up waiting on two workers: the worker's own 400, relayed at once."""
    dropped, parsed = UNNAMED_AND_PARSED[kind]
    sip = RawSip(TRUNK, fronted.sip_port)
    try:
        refused = final_answer(sip, sip.invite(UNSERVED, extra=dropped))
        answer = final_answer(sip, sip.invite(UNSERVED, extra=parsed))
    finally:
        sip.close()
    assert refused is not None and refused.startswith("SIP/2.0 400 Bad Request\r\n"), f"{refused}"
    assert answer is not None and status_of(answer) in (404, 420), f"{answer}\n{fronted.log()[-3000:]}"


def final_answer(sip: RawSip, dialog: Dialog) -> str | None:
    """The final answer to `dialog`'s INVITE: the front sends its answer to the one before again, unacknowledged."""
    return sip.first_answer(10.0, lambda message: status_of(message) >= 200 and f"{dialog.call_id}\r\n" in message)


def test_pjsip_cuts_a_datagram_at_4000_bytes(lone_worker: EdgeProcess) -> None:
    """4010 bytes whose last header is Content-Length: cut in it, the request is dropped; 4000, answered."""
    sip = RawSip(TRUNK, lone_worker.sip_port)
    try:
        for size, answered in ((PACKET_BYTES + 10, False), (PACKET_BYTES, True)):
            sip.sock.sendto(sized_invite(sip, size), ("127.0.0.1", lone_worker.sip_port))
            answer = sip.final_answer(2.0 if not answered else 10.0)
            assert (answer is not None) == answered, (size, answer)
    finally:
        sip.close()


def sized_invite(sip: RawSip, size: int) -> bytes:
    """An INVITE of `size` bytes without a body, to UNSERVED: a padding header before its Content-Length."""
    port, call_id = sip.sock.getsockname()[1], secrets.token_hex(8)
    head = (f"INVITE sip:{UNSERVED}@127.0.0.1:{sip.edge_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {TRUNK}:{port};branch=z9hG4bK{call_id};rport\r\nMax-Forwards: 70\r\n"
            f"From: <sip:+14155550100@127.0.0.1>;tag=f{call_id}\r\nTo: <sip:{UNSERVED}@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{TRUNK}:{port}>\r\nX-Pad: ")
    tail = "\r\nContent-Length: 0\r\n\r\n"
    return (head + "a" * (size - len(head) - len(tail)) + tail).encode()


def test_a_burst_of_them_from_the_trunks_address_is_refused_and_the_trunks_call_answered(
        fronted: EdgeProcess) -> None:
    statuses: list[int] = []
    done = threading.Event()

    def burst() -> None:
        sip = RawSip(TRUNK, fronted.sip_port)
        heads = [dropped for dropped, _ in DROPPED_AND_PARSED.values()]
        try:
            started, sent = time.monotonic(), 0
            while (elapsed := time.monotonic() - started) < BURST_SECONDS:
                if elapsed >= sent / BURST_RATE:
                    sip.invite(NUMBER, extra=heads[sent % len(heads)])
                    sent += 1
                time.sleep(0.01)
            statuses.extend(status_of(answer) for answer in sip.answers(1.0))
        finally:
            sip.close()
            done.set()

    threading.Thread(target=burst, daemon=True).start()
    time.sleep(CALL_AT_SECONDS)
    _, bye = HeldCall(fronted, TRUNK, NUMBER).end()  # raises unless answered 200
    assert done.wait(BURST_SECONDS + 10.0)
    assert bye is not None and status_of(bye) == 200, bye
    finals = [status for status in statuses if status >= 200]
    assert finals and set(finals) == {400}, statuses
