"""bench/sip_edge_frames.py finds each caller packet's audio in what the edge sent, though PJSIP's
bridge re-cut it into frames of its own, and times the packet to the frames that carried it; and
the edge's frame trace (sipedge/frame_trace.py) writes what the bench reads."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from bench.sip_edge_frames import Stamp, edge_latency, read_trace
from tests.sip.loopback_rtp import decode
from tests.sip.loopback_udp import Datagram

MEDIA_PORT, SIP_PORT, EDGE_RTP = 30000, 5060, 40000
SAMPLES = 160  # 20 ms at 8 kHz


def ulaw_packet(sequence: int, payload: bytes) -> bytes:
    return bytes([0x80, 0]) + sequence.to_bytes(2, "big") + bytes(8) + payload


# The bridge's frames start `shift` samples into the packets' (PJSIP's bridge was seen at 40): the
# packets found whole, and from each one in → the send carrying its first sample.
@pytest.mark.parametrize(("shift", "found", "first"), [(0, 5, 0.051), (40, 4, 0.031)])
def test_a_packet_is_timed_to_the_frames_that_carried_its_audio_though_they_were_cut_elsewhere(
    shift: int, found: int, first: float,
) -> None:
    rng = np.random.default_rng(7)
    ulaw = rng.integers(0, 255, SAMPLES * 6, dtype=np.uint8).tobytes()  # noise: each packet's samples occur once
    packets = [ulaw[i * SAMPLES : (i + 1) * SAMPLES] for i in range(6)]
    pcm = decode(ulaw, "ulaw")
    datagrams = [Datagram(10.0 + 0.02 * i, MEDIA_PORT, EDGE_RTP, ulaw_packet(i, p)) for i, p in enumerate(packets)]
    datagrams.append(Datagram(10.0, MEDIA_PORT, SIP_PORT, b"INVITE sip:x SIP/2.0\r\n"))  # not RTP into the edge
    # The edge's frames: the audio from `shift` samples in, 160 samples each; frame k heard at 10.05 + 0.02 k,
    # sent 1 ms later.
    frames = [pcm[(shift + k * SAMPLES) * 2 : (shift + (k + 1) * SAMPLES) * 2] for k in range(5)]
    stamps = [stamp for k, frame in enumerate(frames)
              for stamp in (Stamp(10.05 + 0.02 * k, "heard", frame), Stamp(10.051 + 0.02 * k, "sent", frame))]

    latency = edge_latency(datagrams, MEDIA_PORT, SIP_PORT, stamps)

    assert latency.packets == 6
    # Packet 5 ends after the last frame sent (and, shifted, packet 0 starts before the first): not found.
    # Packet i is completed by frame i; shifted, it starts in frame i-1.
    assert latency.whole == pytest.approx([0.051] * found)
    assert latency.first == pytest.approx([first] * found)
    assert latency.pjsip == pytest.approx([0.05] * found)
    assert latency.python == pytest.approx([0.001] * found)


def test_audio_that_occurs_more_than_once_is_left_out() -> None:
    silence = b"\xff" * SAMPLES
    datagrams = [Datagram(1.0, MEDIA_PORT, EDGE_RTP, ulaw_packet(0, silence))]
    stamps = [Stamp(1.03, "sent", bytes(SAMPLES * 2)), Stamp(1.05, "sent", bytes(SAMPLES * 2))]

    latency = edge_latency(datagrams, MEDIA_PORT, SIP_PORT, stamps)

    assert (latency.packets, latency.whole) == (1, [])


def test_the_trace_is_off_unless_named_and_then_holds_both_stamps(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sipedge.frame_trace as frame_trace

    monkeypatch.delenv(frame_trace.TRACE_ENV, raising=False)
    importlib.reload(frame_trace).sent(b"\x01\x02")  # no file named: nothing written, no error
    trace = tmp_path / "frames.trace"
    monkeypatch.setenv(frame_trace.TRACE_ENV, str(trace))
    try:
        traced = importlib.reload(frame_trace)
        traced.heard(b"\x01\x02")
        traced.sent(b"\x01\x02")
        stamps = read_trace(trace, 0, float("inf"))
    finally:
        monkeypatch.delenv(frame_trace.TRACE_ENV)
        importlib.reload(frame_trace)
    assert [(s.stage, s.pcm) for s in stamps] == [("heard", b"\x01\x02"), ("sent", b"\x01\x02")]
    assert stamps[0].at <= stamps[1].at
