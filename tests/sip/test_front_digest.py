"""A trunk with an inbound digest credential, on the kamailio.cfg the edge writes (tests/sip/kamailio_front.py:
real Kamailio, stand-in workers; SIPp the caller answering the challenge): its requests outside a call are
challenged (407), admitted only with a valid response, and a wrong one is answered alike whatever number it
asks for, reaches no worker, and past DIGEST_FAILURES is refused unchecked."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.front_config import DIGEST_FAILURES, DIGEST_REALM
from sipedge.supervisor import KAMAILIO
from tests.sip.kamailio_front import NUMBER, TRUNK, Front, Peer, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP
from tests.sip.sipp import run_sipp

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

USERNAME, PASSWORD = "pbx", secrets.token_urlsafe(16)
UNSERVED = "+15550100999"  # a number no trunk serves
DIGEST = f'inbound_digest_username = "{USERNAME}"\ninbound_digest_password_env = "PBX_DIGEST_PASSWORD"'


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    with running_front(tmp_path, trunk_settings=DIGEST, env={"PBX_DIGEST_PASSWORD": PASSWORD}) as running:
        yield running


def _call(front: Front, number: str, password: str, calls: int = 1) -> list[int]:
    """SIPp's statuses for `calls` of call_digest_refused.xml from the trunk, answering with `password`."""
    run = run_sipp("call_digest_refused", number, front.config.sip_port, front.log_path.parent, source=TRUNK,
                   credential=(USERNAME, password), calls=calls)
    assert run.returncode == 0, f"{run.output}\n{run.messages[-3000:]}\n{front.log_path.read_text()[-3000:]}"
    return run.statuses()


def test_no_credential_is_challenged_407_and_reaches_no_worker(front: Front) -> None:
    trunk = Peer(TRUNK, front)
    try:
        for method in ("INVITE", "MESSAGE"):
            call_id = secrets.token_hex(6)
            trunk.send(method, f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
                       extra=("Content-Type: application/sdp",), body=GOOD_SDP)
            got = trunk.messages(1.0)
            assert [m.split("\r\n", 1)[0] for m in got] == ["SIP/2.0 407 Proxy Authentication Required"], method
            assert f'Proxy-Authenticate: Digest realm="{DIGEST_REALM}", nonce=' in got[0]
            assert not any(call_id in text for text in front.at_workers())
        # OPTIONS, answered by the front alike to anyone (the edge's readiness probe, a trunk's keep-alive).
        trunk.send("OPTIONS", f"sip:{front.config.sip_address}", call_id=secrets.token_hex(6))
        assert trunk.answers() == ["SIP/2.0 200 OK"]
    finally:
        trunk.close()


def test_a_wrong_password_is_answered_alike_for_a_served_and_an_unserved_number(front: Front) -> None:
    served = _call(front, NUMBER, "not-" + PASSWORD)
    unserved = _call(front, UNSERVED, "not-" + PASSWORD)
    assert served == unserved == [407, 403]
    assert front.at_workers() == []  # nobody looked the number up
    # Counted with the front's other refusals (sipedge/front_refusals.py reads these lines back).
    assert front.log_path.read_text().count(f"403 from {TRUNK}: a wrong digest response") == 2


def test_the_right_password_reaches_a_worker_without_the_credential(front: Front) -> None:
    for worker in front.workers:
        worker.answers = ("403 Forbidden",)  # the stand-in refuses it, so that the scenario ends at once
    assert _call(front, NUMBER, PASSWORD)[-1] == 403
    invites = [text for text in front.at_workers() if text.startswith("INVITE ")]
    assert len(invites) == 1, front.at_workers()
    assert "proxy-authorization" not in invites[0].lower()  # the front's alone


def test_a_flood_of_wrong_responses_is_cut_off_unchallenged(front: Front) -> None:
    statuses = _call(front, NUMBER, "not-" + PASSWORD, calls=DIGEST_FAILURES)
    assert statuses.count(407) == statuses.count(403) == DIGEST_FAILURES, statuses
    # Now even a request the right password would answer is refused unchallenged, until the source stops
    # for DIGEST_FAILURE_SECONDS: no more guesses are checked.
    trunk = Peer(TRUNK, front)
    try:
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=secrets.token_hex(6),
                   extra=("Content-Type: application/sdp",), body=GOOD_SDP)
        assert trunk.answers() == ["SIP/2.0 403 Forbidden"]
    finally:
        trunk.close()
    assert wait_for(lambda: f"403 from {TRUNK}: over its wrong digest responses" in front.log_path.read_text())
    assert front.at_workers() == []


def test_wrong_responses_on_a_nonce_sent_elsewhere_never_cut_the_trunk_off(tmp_path: Path) -> None:
    """Someone within the trunk's range takes a nonce at its own address and sends wrong responses as if from
    the trunk's (UDP's source is easily forged): challenged again, never counted against the trunk's address."""
    neighbour = "127.0.0.21"
    with running_front(tmp_path, trunk_settings=DIGEST, env={"PBX_DIGEST_PASSWORD": PASSWORD},
                       sources=f"{TRUNK}/30") as front:
        uri = f"sip:{NUMBER}@{front.config.sip_address}"
        elsewhere, trunk = Peer(neighbour, front), Peer(TRUNK, front)
        try:
            elsewhere.send("INVITE", uri, call_id=secrets.token_hex(6))
            (challenge,) = elsewhere.messages()
            nonce = re.search(r'nonce="([^"]+)"', challenge)
            assert nonce is not None, challenge
            for _ in range(DIGEST_FAILURES + 3):
                trunk.send("INVITE", uri, call_id=secrets.token_hex(6),
                           extra=(_authorization(uri, nonce[1], "not-" + PASSWORD),))
                # That nonce is no good from here: challenged again, as a stale one would be.
                assert trunk.answers() == ["SIP/2.0 407 Proxy Authentication Required"]
        finally:
            elsewhere.close()
            trunk.close()
        assert "over its wrong digest responses" not in front.log_path.read_text()
        for worker in front.workers:
            worker.answers = ("403 Forbidden",)
        assert _call(front, NUMBER, PASSWORD)[-1] == 403  # the stand-in worker's: admitted
        assert [text for text in front.at_workers() if text.startswith("INVITE ")], front.log_path.read_text()


def _authorization(uri: str, nonce: str, password: str) -> str:
    """A caller's answer to a challenge (RFC 2617, qop=auth), as a UA computes it: what the test sends, not checks."""
    ha1 = hashlib.md5(f"{USERNAME}:{DIGEST_REALM}:{password}".encode()).hexdigest()  # noqa: S324 - digest's own
    ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()  # noqa: S324
    response = hashlib.md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()  # noqa: S324
    return (f'Proxy-Authorization: Digest username="{USERNAME}", realm="{DIGEST_REALM}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", qop=auth, nc=00000001, cnonce="c0ffee", algorithm=MD5')


@pytest.mark.parametrize("header", ['Digest username="pbx", realm="voicefleet", nonce=, uri=""', "Digest ,,,,,,"])
def test_malformed_credentials_are_answered_400_without_a_log_line_each(front: Front, header: str) -> None:
    """A scanner's unparsable Proxy-Authorization is refused by the sanity checks (400), and writes no line of
    Kamailio's (the auth module's and pv's parse errors were one per request); a PBX's own never is."""
    trunk = Peer(TRUNK, front)
    try:
        before = len(front.log_path.read_text())
        call_id = secrets.token_hex(6)
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
                   extra=(f"Proxy-Authorization: {header}", "Content-Type: application/sdp"), body=GOOD_SDP)
        assert trunk.answers() == ["SIP/2.0 400 Bad Auth Header"]
        # A request after it: once its answer is in, anything the malformed one made Kamailio write is too.
        trunk.send("OPTIONS", f"sip:{front.config.sip_address}", call_id=secrets.token_hex(6))
        assert trunk.answers() == ["SIP/2.0 200 OK"]
        assert "credentials" not in front.log_path.read_text()[before:]
        assert not any(call_id in text for text in front.at_workers())
    finally:
        trunk.close()
