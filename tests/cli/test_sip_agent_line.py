"""The SIP caller's line keeps no standing delay: PJSIP's media clock takes one frame a tick, so a
burst from a parent that fell behind would otherwise delay every later word, and time every answer
late, by the burst's length. Past 3 frames (60 ms) the oldest is dropped, as a jitter buffer drops a
late packet."""

from __future__ import annotations

import pytest

pytest.importorskip("pjsua2")

from voicefleet.loadtest.sip_agent import FRAME_BYTES, MAX_QUEUED, Line  # noqa: E402  (PJSUA2, when installed)


def test_a_burst_of_frames_leaves_only_the_newest_to_play() -> None:
    line = Line()
    for number in range(10):  # 200 ms sent at once, as a stalled parent catches up
        line.play(bytes([number]) * FRAME_BYTES)
    played = [line.speech.get_nowait()[0] for _ in range(line.speech.qsize())]
    assert MAX_QUEUED == 3 and played == [7, 8, 9]
