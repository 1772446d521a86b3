"""A call's jitter buffer holds two of the trunk's packets at most, whatever their length (the ptime
the trunk asked for): PJSUA2's stream parameters as the edge leaves them before the stream is made."""

from __future__ import annotations

import pjsua2 as pj
import pytest

from sipedge.listening_media import cap_jitter_buffer


def audio_stream(frames_per_packet: int, frame_ms: int = 10) -> pj.StreamInfo:
    stream = pj.StreamInfo()
    stream.type = pj.PJMEDIA_TYPE_AUDIO
    stream.audCodecParam.setting.frmPerPkt = frames_per_packet
    stream.audCodecParam.info.frameLen = frame_ms
    return stream


@pytest.mark.parametrize(("frames_per_packet", "most_ms"), [(2, 40), (3, 60), (1, 20)])
def test_two_packets_at_most(frames_per_packet: int, most_ms: int) -> None:
    stream = audio_stream(frames_per_packet)
    cap_jitter_buffer(stream)
    assert stream.jbMax == most_ms


def test_a_stream_of_unknown_packets_keeps_pjsips_own() -> None:
    stream = audio_stream(0)
    cap_jitter_buffer(stream)
    assert stream.jbMax == -1
