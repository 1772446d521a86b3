"""A trunk whose SRTP is mandatory, held by PJSIP itself: an INVITE is judged by the transport PJSIP
received it on (not the Via its sender wrote) and by the keys PJSIP can use (not the mere text
`a=crypto`); a re-INVITE neither drops SRTP nor leaves TLS. Raw callers shape what baresip would
never send, against the edge of tests/sip/test_tls.py (its dispatcher answers admitted calls)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sip.certificates import TestCa
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.raw_sip import status_of
from tests.sip.secure_caller import (
    AVP,
    AVP_BEST_EFFORT,
    AVP_KEY_ON_VIDEO,
    AVP_UNUSABLE_KEY,
    KEY,
    SAVP,
    SDP_HEAD,
    Leg,
    SecureCall,
    keys_in,
)
from tests.sip.test_tls import OPTIONAL_NUMBER, PLAIN_NUMBER, ca, tls_edge  # noqa: F401  (its fixtures, shared)
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher and the edge
REFUSED = (406, 488)  # PJSIP's answers: an insecure transport for SRTP's keys, an offer it cannot key


@pytest.fixture
def tls_leg(tls_edge: tuple[EdgeProcess, int], ca: TestCa) -> Iterator[Leg]:  # noqa: F811
    leg = Leg(tls_edge[1], "TLS", ca.issue("trunk"), ca)
    yield leg
    leg.close()


@pytest.fixture
def udp_leg(tls_edge: tuple[EdgeProcess, int]) -> Iterator[Leg]:  # noqa: F811
    leg = Leg(tls_edge[0].sip_port, "TLS")  # plain UDP, its Via forged to say TLS
    yield leg
    leg.close()


@pytest.mark.parametrize("sdp", [SAVP, AVP_UNUSABLE_KEY], ids=["keys", "unusable keys"])
def test_an_invite_over_udp_whose_via_says_tls_is_refused_without_keys(
    tls_edge: tuple[EdgeProcess, int], udp_leg: Leg, sdp: str,  # noqa: F811
) -> None:
    answers = SecureCall(NUMBER).invite(udp_leg, sdp)
    assert status_of(answers[-1]) in REFUSED, f"{answers}\n{tls_edge[0].log()}"
    assert keys_in(answers) == []  # the edge's SRTP key never goes out in the clear


@pytest.mark.parametrize("sdp", [AVP_UNUSABLE_KEY, AVP_KEY_ON_VIDEO], ids=["unusable keys", "keys on video"])
def test_an_offer_over_tls_whose_keys_pjsip_cannot_use_is_488(
    tls_edge: tuple[EdgeProcess, int], tls_leg: Leg, sdp: str,  # noqa: F811
) -> None:
    answers = SecureCall(NUMBER).invite(tls_leg, sdp)
    assert status_of(answers[-1]) == 488, f"{answers}\n{tls_edge[0].log()}"


@pytest.mark.parametrize("over", ["tls", "udp"])
def test_a_reinvite_that_drops_srtp_or_leaves_tls_is_488_and_the_call_goes_on(
    tls_edge: tuple[EdgeProcess, int], tls_leg: Leg, udp_leg: Leg, over: str,  # noqa: F811
) -> None:
    call = SecureCall(NUMBER)
    answered = call.invite(tls_leg, SAVP)
    assert status_of(answered[-1]) == 200 and keys_in(answered), f"{answered}\n{tls_edge[0].log()}"
    leg, sdp = (tls_leg, AVP) if over == "tls" else (udp_leg, SAVP)
    refused = call.request(leg, "INVITE", sdp)
    call.acknowledge(leg)
    assert status_of(refused[-1]) == 488 and keys_in(refused) == [], f"{refused}\n{tls_edge[0].log()}"
    kept = call.request(tls_leg, "INVITE", SAVP)  # the call is still up, still keyed, over TLS
    call.acknowledge(tls_leg)
    assert status_of(kept[-1]) == 200 and keys_in(kept), f"{kept}\n{tls_edge[0].log()}"
    assert status_of(call.request(tls_leg, "BYE")[-1]) == 200


def test_a_reinvite_that_drops_the_srtp_a_call_got_without_mandatory_is_488(
    tls_edge: tuple[EdgeProcess, int],  # noqa: F811
) -> None:
    """A trunk whose SRTP is optional shares the edge's own account: a caller offering keys gets SRTP,
    and may not drop it to plain RTP halfway through."""
    leg = Leg(tls_edge[0].sip_port, "UDP")
    try:
        call = SecureCall(OPTIONAL_NUMBER)
        answered = call.invite(leg, SAVP)
        assert status_of(answered[-1]) == 200 and keys_in(answered), f"{answered}\n{tls_edge[0].log()}"
        refused = call.request(leg, "INVITE", AVP)
        call.acknowledge(leg)
        assert status_of(refused[-1]) == 488, f"{refused}\n{tls_edge[0].log()}"
        kept = call.request(leg, "INVITE", SAVP)
        call.acknowledge(leg)
        assert status_of(kept[-1]) == 200 and keys_in(kept), f"{kept}\n{tls_edge[0].log()}"
        assert status_of(call.request(leg, "BYE")[-1]) == 200
    finally:
        leg.close()


def test_a_best_effort_srtp_offer_to_the_trunk_whose_srtp_is_off_is_488_not_keyed(
    tls_edge: tuple[EdgeProcess, int],  # noqa: F811
) -> None:
    """The `plain` trunk shares the edge's own account, whose SRTP is optional since other trunks have SRTP:
    PJSIP alone would answer an RTP/AVP offer carrying `a=crypto` with keys of its own, SRTP on a trunk that
    has none."""
    leg = Leg(tls_edge[0].sip_port, "UDP")
    try:
        answers = SecureCall(PLAIN_NUMBER).invite(leg, AVP_BEST_EFFORT)
        assert status_of(answers[-1]) == 488 and keys_in(answers) == [], f"{answers}\n{tls_edge[0].log()}"
        assert "offer carries SRTP keys" in tls_edge[0].log()
    finally:
        leg.close()


CRYPTO = f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n"
PCMU = "a=rtpmap:0 PCMU/8000\r\n"
MULTIPART = ("--b1\r\nContent-Type: text/plain\r\n\r\nm=audio 1 RTP/AVP 0\r\n"
             f"--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP_HEAD}m=audio 30000 RTP/SAVP 0\r\n{PCMU}{CRYPTO}"
             "--b1--\r\n")
# Offers PJSIP reads as SRTP with keys where the first audio line's text says plain RTP or nothing.
DOUBTFUL = {
    "plain line then an SRTP one": (f"m=audio 30000 RTP/AVP 0\r\n{PCMU}m=audio 30002 RTP/SAVP 0\r\n{PCMU}{CRYPTO}",
                                    "application/sdp"),
    "port/count": (f"m=audio 30000/1 RTP/SAVP 0\r\n{PCMU}{CRYPTO}", "application/sdp"),
    "keys in upper case": (f"m=audio 30000 RTP/AVP 0\r\n{PCMU}{CRYPTO.replace('a=crypto', 'a=CRYPTO')}",
                           "application/sdp"),
    "multipart": (MULTIPART, "multipart/mixed;boundary=b1"),
}


@pytest.mark.parametrize("shape", DOUBTFUL)
def test_an_offer_pjsip_might_key_to_the_trunk_whose_srtp_is_off_is_488(
    tls_edge: tuple[EdgeProcess, int], shape: str,  # noqa: F811
) -> None:
    """PJSIP reads every m= line of every body part, in any case; an "off" trunk's offer it might key is refused."""
    body, content_type = DOUBTFUL[shape]
    leg = Leg(tls_edge[0].sip_port, "UDP")
    try:
        answers = SecureCall(PLAIN_NUMBER).invite(leg, body, content_type)
        assert status_of(answers[-1]) == 488 and keys_in(answers) == [], f"{answers}\n{tls_edge[0].log()[-3000:]}"
    finally:
        leg.close()


def test_a_best_effort_srtp_offer_to_an_edge_without_srtp_is_answered_with_plain_rtp(
    parrot_dispatcher: DispatcherProcess, tmp_path: Path,
) -> None:
    """No trunk has SRTP: PJSIP's account keys nothing, and takes the plain RTP the caller offered."""
    with run_edge(parrot_dispatcher, tmp_path) as edge:
        leg = Leg(edge.sip_port, "UDP")
        try:
            call = SecureCall(NUMBER)
            answered = call.invite(leg, AVP_BEST_EFFORT)
            assert status_of(answered[-1]) == 200, f"{answered}\n{edge.log()}"
            assert keys_in(answered) == [] and "RTP/AVP" in answered[-1], answered[-1]
            assert status_of(call.request(leg, "BYE")[-1]) == 200
        finally:
            leg.close()
