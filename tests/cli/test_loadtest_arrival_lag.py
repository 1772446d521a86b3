"""How late the bot's audio reached the caller against the bot's own audio clock (its RTP timestamps):
the path's best so far is its baseline, so a constant network delay reads 0, and a frame read seconds
after the frames sent before it reads those seconds."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from av import AudioFrame

from voicefleet.loadtest.arrival_lag import ArrivalLag, late_at
from voicefleet.loadtest.webrtc import Recording


def test_a_frame_read_later_than_the_paths_best_reads_the_difference() -> None:
    lag = ArrivalLag()
    assert lag.note(100.15, 0.0) == 0.0  # 150 ms of network and jitter buffer: the baseline
    assert lag.note(100.17, 0.02) == pytest.approx(0.0)
    assert lag.note(104.56, 0.04) == pytest.approx(4.37)  # the caller read it 4.4 s late
    assert lag.note(100.20, 0.06) == pytest.approx(0.0)  # a better path: the new baseline
    assert lag.note(101.0, None) == 0.0  # no clock: unknown, not late


def recording_of(arrivals: list[tuple[float, int]]) -> Recording:
    """A caller's recording of 20 ms frames of 48 kHz stereo, each (arrival, its RTP timestamp)."""
    recording = Recording()
    for arrived, pts in arrivals:
        frame = AudioFrame.from_ndarray(np.zeros((1, 1920), dtype=np.int16), format="s16", layout="stereo")
        frame.sample_rate, frame.time_base, frame.pts = 48000, fractions.Fraction(1, 48000), pts
        recording.add(frame, arrived)
    return recording


def test_an_answers_first_audio_and_a_turn_with_none_read_their_lateness() -> None:
    recording = recording_of([(10.0, 0), (10.02, 960), (13.04, 1920), (13.06, 2880)])
    assert late_at(recording, 10.0, 13.04) == pytest.approx(3.0)  # the answer's first audio
    assert late_at(recording, 10.0, 10.02) == pytest.approx(0.0)
    assert late_at(recording, 10.01, None) == pytest.approx(3.0)  # none heard: the most since the turn began
    assert late_at(recording, 14.0, None) is None  # nothing came in
