"""Which re-INVITE offers the edge refuses itself (sipedge/reinvite.py): those without an audio stream
in G.711, which PJSIP's negotiation would answer `500`."""

from __future__ import annotations

import pytest

from sipedge.reinvite import offer_refusal

HEAD = "v=0\r\no=trunk 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"


@pytest.mark.parametrize("media", [
    "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",  # hold
    "m=audio 4000 RTP/AVP 8\r\n",  # A-law by its static type alone
    "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMA/8000\r\n",  # A-law under a dynamic type
    "m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\nm=audio 4002 RTP/AVP 0\r\n",  # a second stream in G.711
])
def test_an_offer_with_g711_is_left_to_pjsip(media: str) -> None:
    assert offer_refusal(HEAD + media) is None


def test_no_offer_is_left_to_pjsip_which_offers_itself() -> None:
    assert offer_refusal("") is None


@pytest.mark.parametrize("media", [
    "m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
    "m=audio 0 RTP/AVP 0\r\n",  # its only G.711 stream disabled
    "m=video 4000 RTP/AVP 0\r\n",  # not audio
])
def test_an_offer_without_g711_audio_is_488(media: str) -> None:
    assert offer_refusal(HEAD + media) == 488
