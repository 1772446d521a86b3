"""The fuzzed corpus of tests/sip/fuzzed_sip.py against `python -m sipedge`, on the one-worker edge (PJSIP alone) and
on the Kamailio front a trunk with a credential brings, from a trunk's address and a stranger's at once, while a
call of that trunk's is up (the corpus' requests within a call carry its IDs). The edge and its every process stay
up, it answers OPTIONS and takes a valid call at once afterwards, no fuzzed request starts a session
(bench/sip_capacity.py's fake dispatcher counts them), the call ends cleanly, and the edge's log grows by a bounded
count of lines."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.sip_capacity import FakeDispatcher
from sipedge.log_relay import BYTES_PER_SECOND
from tests.sip import fuzzed_sip
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.fake_dispatcher_thread import new_sessions, serving_fake
from tests.sip.held_call import ANSWER_SECONDS, HeldCall
from tests.sip.raw_sip import RawSip, status_of

pytestmark = pytest.mark.slow  # the edge, real PJSIP and Kamailio processes

TRUNK = "127.0.0.1"  # the trunk of tests/sip/conftest.py, whose call is taken after the corpus
FUZZING_TRUNK, FUZZING_NUMBER = "127.0.0.7", "+14155550197"  # the trunk that sends the corpus, and its number
STRANGER = "127.0.0.2"
UNSERVED = "+14155550000"
FUZZING = f'[[trunk]]\nname = "fuzzing"\nsources = ["{FUZZING_TRUNK}/32"]\nnumbers = {{ "{FUZZING_NUMBER}" = "" }}\n'
PBX = ('[[trunk]]\nname = "pbx"\nnumbers = { "+14155550198" = "" }\ninbound_digest_username = "pbx"\n'
       'inbound_digest_password_env = "PBX_DIGEST_PASSWORD"\n')
# Under the front's per-source flood limit (pike: 100 requests in 2 s) and, a third of them INVITEs, about the
# workers' per-source INVITE rate: the corpus reaches the parsers rather than the limits.
RATE = 25
# The edge's own lines and its workers', for the 600 requests sent: refusals and PJSIP's errors are logged a few
# per period, then counted (sipedge/refusal_log.py, sipedge/pjsip_log.py). Kamailio's parser logs each malformed
# request it drops: its lines are held to the relay's bytes a second instead (sipedge/log_relay.py).
LOG_LINES_MOST = 150


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDispatcher]:
    with serving_fake() as serving:
        yield serving


@pytest.fixture(scope="module", params=["one worker", "front"])
def fuzzed_edge(request: pytest.FixtureRequest, fake: FakeDispatcher,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    front = request.param == "front"
    with run_edge(f"http://127.0.0.1:{fake.port}", tmp_path_factory.mktemp("sip-fuzzed"),
                  trunks=FUZZING + (PBX if front else ""),
                  env={"PBX_DIGEST_PASSWORD": "a-test-password-of-24-chars"} if front else None) as running:
        yield running


def send_corpus(edge: EdgeProcess, source: str, number: str, call: HeldCall) -> int:
    """The corpus from `source`, RATE a second: out of a call to `number`, within one with `call`'s IDs."""
    corpus = fuzzed_sip.corpus()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        values = {fuzzed_sip.NUMBER: number.encode(), fuzzed_sip.CALLED: call.number.encode(),
                  fuzzed_sip.SOURCE: source.encode(), fuzzed_sip.PORT: str(sock.getsockname()[1]).encode(),
                  fuzzed_sip.EDGE_PORT: str(edge.sip_port).encode(),
                  fuzzed_sip.CALL_ID: call.dialog.call_id.encode(), fuzzed_sip.FROM_TAG: call.dialog.from_tag.encode(),
                  fuzzed_sip.TO_TAG: call.dialog.to.rsplit("tag=", 1)[-1].encode()}
        started = time.monotonic()
        for index, (_, message) in enumerate(corpus):
            time.sleep(max(0.0, started + index / RATE - time.monotonic()))
            sock.sendto(fuzzed_sip.fill(message, values), ("127.0.0.1", edge.sip_port))
    return len(corpus)


def test_the_corpus_leaves_the_edge_up_serving_and_sessionless(fuzzed_edge: EdgeProcess, fake: FakeDispatcher) -> None:
    edge = fuzzed_edge
    before, lines_before, started = set(fake.sessions), len(edge.log().splitlines()), time.monotonic()
    call = HeldCall(edge, FUZZING_TRUNK, FUZZING_NUMBER)
    with ThreadPoolExecutor(2) as pool:  # the trunk to a number it does not serve, the stranger to the served one
        sending = [pool.submit(send_corpus, edge, source, number, call)
                   for source, number in ((FUZZING_TRUNK, UNSERVED), (STRANGER, FUZZING_NUMBER))]
        sent = sum(each.result() for each in sending)
    log = edge.log()
    assert edge.process.poll() is None and " exited (" not in log, log[-5000:]
    assert len(new_sessions(fake, before)) == 1, fake.sessions  # the held call's: no fuzzed request started one

    # The held call ends cleanly: the trunk's BYE answered (or, if a fuzzed BYE of the trunk's ended it, 481).
    _, bye = call.end()
    assert bye is not None and status_of(bye) in (200, 481), f"{bye}\n{edge.log()[-3000:]}"
    # Still serving: OPTIONS from anyone, and a valid call of the other trunk's, answered and ended.
    stranger = RawSip(STRANGER, edge.sip_port)
    try:
        stranger.options(NUMBER)
        answer = stranger.final_answer(ANSWER_SECONDS)
    finally:
        stranger.close()
    assert answer is not None and status_of(answer) == 200, f"{answer}\n{edge.log()[-3000:]}"
    # Taken at once, never refused 503: what PJSIP would drop the front refused itself (sipedge/front_unparsable.py),
    # any other INVITE a worker dropped unanswered held its slot only while the front waited for an answer (1 s a
    # worker), and had the front mark it down for none (front_config's NEXT_WORKER).
    _, valid_bye = HeldCall(edge, TRUNK, NUMBER).end()
    assert valid_bye is not None and status_of(valid_bye) == 200, f"{valid_bye}\n{edge.log()[-3000:]}"
    deadline = time.monotonic() + ANSWER_SECONDS
    while set(new_sessions(fake, before).values()) != {"ended"} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(new_sessions(fake, before).values()) == ["ended", "ended"], fake.sessions
    log = edge.log()
    assert edge.process.poll() is None and " exited (" not in log, log[-5000:]
    grown = log.splitlines()[lines_before:]
    own = [line for line in grown if not line.startswith("kamailio: ")]
    assert len(own) < LOG_LINES_MOST, f"{sent} requests sent:\n" + "\n".join(own[-100:])
    kamailio = sum(len(line) + 1 for line in grown if line.startswith("kamailio: "))
    assert kamailio <= BYTES_PER_SECOND * (time.monotonic() - started + 1), kamailio
