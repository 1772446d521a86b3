"""A bot's call's jitter buffer prefetches four of the trunk's packets at most and keeps room for eight,
each at least its floor in milliseconds, whatever the ptime PJSIP knows (the one the edge sends, which
the trunk need not keep to); a transfer's call to a person keeps PJSIP's own: PJSUA2's stream
parameters as the edge leaves them before the stream is made."""

from __future__ import annotations

import pjsua2 as pj
import pytest

from sipedge.listening_media import tune_jitter_buffer
from sipedge.sip_call import SipCall


def audio_stream(frames_per_packet: int, frame_ms: int = 10) -> pj.StreamInfo:
    stream = pj.StreamInfo()
    stream.type = pj.PJMEDIA_TYPE_AUDIO
    stream.audCodecParam.setting.frmPerPkt = frames_per_packet
    stream.audCodecParam.info.frameLen = frame_ms
    return stream


@pytest.mark.parametrize(("frames_per_packet", "prefetch_ms", "most_ms"),
                         [(2, 80, 160), (3, 120, 240), (4, 160, 320), (1, 80, 160), (0, 80, 160)])
def test_four_packets_prefetched_eight_kept(frames_per_packet: int, prefetch_ms: int, most_ms: int) -> None:
    stream = audio_stream(frames_per_packet)
    tune_jitter_buffer(stream)
    assert (stream.jbMaxPre, stream.jbMax) == (prefetch_ms, most_ms)


def test_a_trunk_that_asked_for_10_ms_and_sends_20_still_has_room_for_a_burst() -> None:
    """PJSIP's `frmPerPkt` is the edge's own ptime (what the trunk asked for); the trunk's packets may be
    longer: the floors hold four and eight of the usual 20 ms ones whatever it asked."""
    stream = audio_stream(1)
    tune_jitter_buffer(stream)
    assert stream.jbMaxPre >= 4 * 20 and stream.jbMax >= 8 * 20


def test_a_stream_that_is_not_audio_keeps_pjsips_own() -> None:
    stream = audio_stream(2)
    stream.type = pj.PJMEDIA_TYPE_VIDEO
    tune_jitter_buffer(stream)
    assert (stream.jbMaxPre, stream.jbMax) == (-1, -1)


@pytest.mark.parametrize(("for_person", "tuned"), [(False, True), (True, False)])
def test_a_call_to_a_person_keeps_pjsips_own_buffer(for_person: bool, tuned: bool) -> None:
    call = SipCall(pj.Account(), pj.PJSUA_INVALID_ID, lambda ended: None)
    call.for_person = for_person
    prm = pj.OnStreamPreCreateParam()
    prm.streamInfo = audio_stream(2)
    call.onStreamPreCreate(prm)
    assert (prm.streamInfo.jbMax != -1) is tuned
