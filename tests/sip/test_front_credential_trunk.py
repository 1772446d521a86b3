"""Trunks with an inbound digest credential and no sources (docs/sip.md#inbound-digest), on the kamailio.cfg the
edge writes (tests/sip/kamailio_front.py: real Kamailio, stand-in workers; SIPp the caller): a caller from an
address no trunk names is challenged, admitted with either trunk's credential (the username picks the trunk, which
the front tells the worker in CREDENTIAL_HEADER beside its token), refused 403 with a wrong one before any worker
sees it, and a caller's own CREDENTIAL_HEADER never reaches a worker. The worker's requests within such a call go
back to the caller's address, which is no trunk's."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.front_config import DIGEST_REALM
from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import CREDENTIAL_HEADER, TOKEN_HEADER
from tests.sip.kamailio_front import NUMBER, STRANGER, TRUNK, Front, Peer, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP
from tests.sip.sipp import run_sipp

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

PASSWORDS = {"pbx-a": secrets.token_urlsafe(24), "pbx-b": secrets.token_urlsafe(24)}
OTHER_NUMBER = "+14155550188"
# Two trunks of credentials alone, after the file's own "carrier" (sources: TRUNK, no credential).
ANYWHERE = """
[[trunk]]
name = "office-a"
numbers = {{ "{number}" = "" }}
inbound_digest_username = "pbx-a"
inbound_digest_password_env = "PBX_A_PASSWORD"

[[trunk]]
name = "office-b"
numbers = {{ "{other}" = "" }}
inbound_digest_username = "pbx-b"
inbound_digest_password_env = "PBX_B_PASSWORD"
"""


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    with running_front(tmp_path, trunk_settings=ANYWHERE.format(number=NUMBER, other=OTHER_NUMBER),
                       env={"PBX_A_PASSWORD": PASSWORDS["pbx-a"], "PBX_B_PASSWORD": PASSWORDS["pbx-b"]}) as running:
        yield running


def _call(front: Front, number: str, username: str, password: str) -> list[int]:
    """SIPp's statuses for call_digest_refused.xml from STRANGER (in no trunk's sources), answering with the
    credential given; the stand-in workers refuse what reaches them 403, so that the scenario ends at once."""
    for worker in front.workers:
        worker.answers = ("403 Forbidden",)
    run = run_sipp("call_digest_refused", number, front.config.sip_port, front.log_path.parent, source=STRANGER,
                   credential=(username, password))
    assert run.returncode == 0, f"{run.output}\n{run.messages[-3000:]}\n{front.log_path.read_text()[-3000:]}"
    return run.statuses()


def _invites(front: Front) -> list[str]:
    return [text for text in front.at_workers() if text.startswith("INVITE ")]


@pytest.mark.parametrize("username", ["pbx-a", "pbx-b"])
def test_a_caller_from_no_trunks_address_is_admitted_by_its_credential_which_names_the_trunk(
        front: Front, username: str) -> None:
    statuses = _call(front, NUMBER, username, PASSWORDS[username])
    assert statuses[0] == 407 and statuses[-1] == 403, statuses  # the stand-in worker's 403
    (invite,) = _invites(front)
    assert f"\r\n{CREDENTIAL_HEADER}: {username}\r\n" in invite
    assert f"\r\n{TOKEN_HEADER}: {front.token}\r\n" in invite  # the worker believes it only with the token
    assert "proxy-authorization" not in invite.lower()


# Named ids: a random password in an id differs between pytest-xdist's workers, which then refuse to run.
@pytest.mark.parametrize(("username", "password"), [("pbx-a", "not-it"), ("pbx-a", PASSWORDS["pbx-b"]),
                                                     ("nobody", PASSWORDS["pbx-a"])],
                         ids=["a-wrong-password", "another-trunks-password", "an-unknown-username"])
def test_a_wrong_credential_from_anywhere_is_403_and_reaches_no_worker(
        front: Front, username: str, password: str) -> None:
    for number in (NUMBER, "+15550100999"):  # alike whether the number is served or not
        assert _call(front, number, username, password) == [407, 403]
    assert front.at_workers() == []


def test_no_credential_from_anywhere_is_only_challenged(front: Front) -> None:
    stranger = Peer(STRANGER, front)
    try:
        stranger.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=secrets.token_hex(6),
                      extra=("Content-Type: application/sdp",), body=GOOD_SDP)
        assert stranger.answers() == ["SIP/2.0 407 Proxy Authentication Required"]
    finally:
        stranger.close()
    assert front.at_workers() == []


def test_a_callers_own_credential_line_never_reaches_a_worker(front: Front) -> None:
    """From a trunk admitted by its source (no credential asked) and from a stranger alike: the front removes it,
    and tells the worker nothing of a credential it did not check."""
    for worker in front.workers:
        worker.answers = ("403 Forbidden",)
    trunk, stranger = Peer(TRUNK, front), Peer(STRANGER, front)
    forged = (f"{CREDENTIAL_HEADER}: pbx-b", "Content-Type: application/sdp")
    try:
        trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=secrets.token_hex(6),
                   extra=forged, body=GOOD_SDP)
        assert wait_for(lambda: _invites(front))
        stranger.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=secrets.token_hex(6),
                      extra=forged, body=GOOD_SDP)
        assert stranger.answers() == ["SIP/2.0 407 Proxy Authentication Required"]
    finally:
        trunk.close()
        stranger.close()
    (invite,) = _invites(front)
    assert CREDENTIAL_HEADER.lower() not in invite.lower()



def _authorization(username: str, uri: str, nonce: str) -> str:
    """A caller's answer to a challenge (RFC 2617, qop=auth), as a UA computes it: what the test sends, not checks."""
    ha1 = hashlib.md5(f"{username}:{DIGEST_REALM}:{PASSWORDS[username]}".encode()).hexdigest()  # noqa: S324
    ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()  # noqa: S324 - digest's own
    response = hashlib.md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()  # noqa: S324
    return (f'Proxy-Authorization: Digest username="{username}", realm="{DIGEST_REALM}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", qop=auth, nc=00000001, cnonce="c0ffee", algorithm=MD5')


def _invite(stranger: Peer, uri: str, call_id: str, cseq: int, extra: str = "") -> bytes:
    """An INVITE from `stranger` whose Contact names a private address (a PBX behind NAT), not where it sends from."""
    return (f"INVITE {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {stranger.host}:{stranger.port};branch=z9hG4bK{call_id}{cseq}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:+14155550100@{stranger.host}>;tag=caller\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:caller@10.1.2.3:5060>\r\n{extra}"
            f"Content-Type: application/sdp\r\nContent-Length: {len(GOOD_SDP)}\r\n\r\n{GOOD_SDP}").encode()


def test_the_workers_bye_goes_back_to_the_caller_its_credential_admitted_and_nowhere_else(front: Front) -> None:
    """The call's peer is the address its INVITE came from, in no trunk's sources (its Contact, a private address,
    is made to name it): the front relays the worker's BYE there, and refuses one to the Contact's own address."""
    stranger = Peer(STRANGER, front)
    call_id, uri = secrets.token_hex(6), f"sip:{NUMBER}@127.0.0.1"
    front_uri = f"{front.config.sip_address}:{front.config.sip_port}"
    try:
        stranger.sock.sendto(_invite(stranger, uri, call_id, 1), front.address)
        (challenge,) = stranger.messages()
        nonce = re.search(r'nonce="([^"]+)"', challenge)
        assert nonce is not None, challenge
        stranger.sock.sendto(_invite(stranger, uri, call_id, 2, _authorization("pbx-a", uri, nonce[1]) + "\r\n"),
                             front.address)
        assert wait_for(lambda: any(call_id in text for text in front.at_workers())), front.log_path.read_text()
        (invite,) = [text for text in front.at_workers() if call_id in text]
        contact = next(line for line in invite.split("\r\n") if line.lower().startswith("contact:"))
        assert f"@{STRANGER}:{stranger.port}" in contact, contact
        worker = next(w for w in front.workers if any(call_id in text for text in w.received))

        def bye(target: str, branch: str) -> bytes:
            return (f"BYE sip:caller@{target} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{worker.sock.getsockname()[1]};branch=z9hG4bK{call_id}{branch}\r\n"
                    f"Route: <sip:{front_uri};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:{NUMBER}@127.0.0.1>;tag=edge\r\n"
                    f"To: <sip:+14155550100@{STRANGER}>;tag=caller\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n"
                    "Content-Length: 0\r\n\r\n").encode()

        worker.sock.sendto(bye("10.1.2.3:5060", "elsewhere"), front.address)
        assert wait_for(lambda: "is not a trunk of a call here" in front.log_path.read_text(errors="replace"))
        worker.sock.sendto(bye(f"{STRANGER}:{stranger.port}", "back"), front.address)
        assert any(message.startswith("BYE ") and call_id in message for message in stranger.messages(2.0))
    finally:
        stranger.close()
