"""bench/transfer_steps.py: the moments bench/transfer_times.py reads off lo (the first SIP message of a kind, the
first packet of a tone) and the steps' p50/p95 over transfers, a transfer lacking a moment counted as missing."""

from __future__ import annotations

import warnings

import numpy as np

from bench.transfer_steps import CALLER_HZ, Step, Transfer, first_sip, first_tone, table, tone_times
from tests.sip.loopback_udp import Datagram

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

EDGE, PERSON, MEDIA, OTHER = 5060, 5070, 30000, 30002
ZERO = 1_800_000_000.0


def rtp(hz: float, amplitude: float = 9000) -> bytes:
    """A 20 ms μ-law RTP packet of a `hz` tone (0: silence)."""
    pcm = (np.sin(2 * np.pi * hz * np.arange(160) / 8000) * amplitude).astype(np.int16)
    return bytes([0x80, 0]) + bytes(10) + audioop.lin2ulaw(pcm.tobytes(), 2)


def to_media(at: float, payload: bytes, port: int = MEDIA) -> Datagram:
    return Datagram(ZERO + at, 40000, port, payload)


def test_the_bridge_is_the_first_loud_packet_of_the_callers_tone_to_the_persons_port() -> None:
    seen = [to_media(0.1, rtp(CALLER_HZ)),  # before the request: not this transfer's
            to_media(1.0, rtp(0)),  # silence
            to_media(1.1, rtp(1400)),  # the bot's briefing
            to_media(1.2, rtp(CALLER_HZ, amplitude=100)),  # the tone, too quiet to hear
            to_media(1.3, rtp(CALLER_HZ), port=OTHER),  # the tone, to someone else
            to_media(1.4, rtp(CALLER_HZ)),
            to_media(1.5, rtp(CALLER_HZ))]
    assert first_tone(seen, MEDIA, CALLER_HZ, after=ZERO + 0.5) == ZERO + 1.4
    assert tone_times(seen, MEDIA, CALLER_HZ, after=ZERO + 0.5) == [ZERO + 1.4, ZERO + 1.5]
    assert first_tone(seen, MEDIA, 1400, after=ZERO + 0.5) == ZERO + 1.1
    assert first_tone(seen[:5], MEDIA, CALLER_HZ, after=ZERO + 0.5) is None


def test_a_sip_moment_is_the_first_message_of_its_kind_its_way_after_the_request() -> None:
    seen = [Datagram(ZERO + 0.5, PERSON, EDGE, b"INVITE sip:old"),  # before the request
            Datagram(ZERO + 1.0, PERSON, EDGE, b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE"),  # the wrong way
            Datagram(ZERO + 1.1, EDGE, PERSON, b"NOTIFY sip:x\r\nSubscription-State: active"),
            Datagram(ZERO + 1.2, EDGE, PERSON, b"NOTIFY sip:x\r\nSubscription-State: terminated"),
            Datagram(ZERO + 1.3, EDGE, PERSON, b"SIP/2.0 200 OK\r\nCSeq: 2 BYE"),
            Datagram(ZERO + 1.4, EDGE, PERSON, b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE")]
    assert first_sip(seen, b"INVITE ", after=ZERO + 1) is None
    assert first_sip(seen, b"SIP/2.0 200 ", after=ZERO + 1, from_port=EDGE, holding=b"INVITE") == ZERO + 1.4
    assert first_sip(seen, b"SIP/2.0 200 ", after=ZERO + 1, to_port=EDGE) == ZERO + 1.0
    assert first_sip(seen, b"NOTIFY ", after=ZERO + 1, to_port=PERSON,
                     holding=b"Subscription-State: terminated") == ZERO + 1.2


def test_each_steps_p50_and_p95_over_the_transfers_that_had_both_its_moments() -> None:
    ring = Step("the request → the INVITE", "asked", "invite")
    bridge = Step("the request → the bridge", "asked", "bridge")
    transfers = [Transfer({"asked": ZERO, "invite": ZERO + ms / 1000, "bridge": ZERO + 0.5 + ms / 1000})
                 for ms in (9, 5, 7, 40, 6)]
    transfers.append(Transfer({"asked": ZERO, "invite": ZERO + 0.008, "bridge": None}))  # the tone never came
    took = transfers[0].took(ring)
    assert took is not None and abs(took - 0.009) < 1e-6  # epoch seconds: a float's grain there is 0.2 µs
    assert transfers[-1].took(bridge) is None
    assert table([ring, bridge], transfers) == [
        "| the request → the INVITE | p50 8 ms, p95 40 ms (N=6) |  |",  # the 95th of 6 is their largest
        "| the request → the bridge | p50 507 ms, p95 540 ms (N=5) | 1 |"]
    assert table([ring], []) == ["| the request → the INVITE | n/a |  |"]
