"""The SIP caller's line keeps no standing delay: PJSIP's media clock takes one frame a tick, so a
burst from a parent that fell behind would otherwise delay every later word, and time every answer
late, by the burst's length. Past 3 frames (60 ms) the oldest is dropped, as a jitter buffer drops a
late packet. And an edge that is not there is a refusal that says so, from the caller's real process."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("pjsua2")

from tests.support.ports import free_port  # noqa: E402
from voicefleet.loadtest.latest_frames import MAX_QUEUED, LatestFrames  # noqa: E402
from voicefleet.loadtest.sip_agent import FRAME_BYTES  # noqa: E402  (PJSUA2, when installed)
from voicefleet.loadtest.sip_line import SipLine, SipRefused  # noqa: E402
from voicefleet.loadtest.sip_uri import sip_uri  # noqa: E402


def test_a_burst_of_frames_leaves_only_the_newest_to_play() -> None:
    # Not the PJSUA2 port itself: an AudioMediaPort made in a test process whose PJLIB another test started
    # aborted the whole worker (PJLIB asserts on a thread it does not know).
    frames = LatestFrames()
    for number in range(10):  # 200 ms sent at once, as a stalled parent catches up
        frames.put(bytes([number]) * FRAME_BYTES)
    played = [frame[0] for frame in iter(frames.take, None)]
    assert MAX_QUEUED == 3 and played == [7, 8, 9]


@pytest.mark.parametrize(("host", "said"), [
    ("127.0.0.1", "answered 408 no answer within 2 s: the edge did not answer: is it running at that address"),
    ("no-such-host.invalid", "was not called: no-such-host.invalid cannot be reached from here"),
])
async def test_an_edge_that_is_not_there_is_a_refusal_naming_the_way(host: str, said: str) -> None:
    line = SipLine(sip_uri(f"sip:+14155550199@{host}:{free_port(socket.SOCK_DGRAM)}"), answer_seconds=2)
    with pytest.raises(SipRefused) as refused:
        await line.open()
    assert said in str(refused.value)
    assert line.close_code is not None  # its process is gone
