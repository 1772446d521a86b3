"""The caller's audio reaches the bot's stream in the trunk's own packets: each 20 ms frame the edge
sends is one whole RTP packet's audio, not the end of one and the start of the next. A frame cut
across two packets waits for the later one, a bridge tick (20 ms) after the earlier arrived; PJSIP's
packet loss concealment did that to every packet by holding its last 5 ms back. A packet may still
start halfway through a frame after PJSIP's jitter buffer dropped a 10 ms frame (a late packet on
a busy host), never elsewhere. The caller's packets are read off `lo`; each is looked for in what
the edge sent on the stream (its frame trace); no clock is read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.sip_edge_frames import read_trace
from sipedge.frame_trace import TRACE_ENV
from tests.phone.conftest import speech_8k
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.loopback_rtp import RTP_HEADER, decode, rtp_payload
from tests.sip.loopback_udp import LoopbackUdp, can_capture
from tests.sip.test_calls import cued_once
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess

PACKET_BYTES = 160 * 2  # 20 ms of 16-bit PCM at 8 kHz, as the caller's packets carry it
JITTER_FRAME_BYTES = PACKET_BYTES // 2  # what PJSIP's jitter buffer keeps or drops: 10 ms of G.711


@pytest.fixture(scope="module")
def traced_edge(parrot_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[tuple[EdgeProcess, Path]]:
    workdir = tmp_path_factory.mktemp("sip-traced-edge")
    trace = workdir / "frames.trace"
    with run_edge(parrot_dispatcher, workdir, env={TRACE_ENV: str(trace)}) as running:
        yield running, trace


def packet_offsets(packets: list[bytes], audio: bytes) -> list[int]:
    """Where in `audio` each packet's audio found there (once, on a sample) starts, in bytes."""
    offsets = []
    for pcm in packets:
        found = audio.find(pcm)
        while found >= 0 and found % 2:
            found = audio.find(pcm, found + 1)
        if found >= 0 and audio.find(pcm, found + 2) < 0:
            offsets.append(found)
    return offsets


def callers_packets(capture: LoopbackUdp, media_port: int) -> list[bytes]:
    """The caller's (SIPp's) RTP packets read off lo so far, as 16-bit PCM each."""
    return [decode(rtp_payload(d.payload), "ulaw") for d in list(capture.datagrams)
            if d.source_port == media_port and len(d.payload) > RTP_HEADER]


async def test_no_callers_packet_has_its_end_held_back_into_the_next_frame(
    traced_edge: tuple[EdgeProcess, Path],
) -> None:
    """The caller hangs up once it has sent the whole of its speech (cued: test_calls.cued_once)."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    edge, trace = traced_edge
    media_port = free_port_pair(2)  # SIPp's RTP and RTCP
    spoken = len(speech_8k()) // PACKET_BYTES  # the packets of the caller's whole speech
    capture = LoopbackUdp({media_port})
    try:
        call = await cued_once(edge, "call_echo", media_port,
                               lambda: len(callers_packets(capture, media_port)) >= spoken)
        await asyncio.sleep(0.5)  # the last frames' trace lines
    finally:
        capture.stop()
    assert call.returncode == 0, f"{call.output}\n{edge.log()[-3000:]}"
    packets = callers_packets(capture, media_port)
    sent = b"".join(stamp.pcm for stamp in read_trace(trace, 0, float("inf")) if stamp.stage == "sent")
    offsets = packet_offsets(packets, sent)
    assert len(offsets) > len(packets) // 2, f"{len(offsets)} of the caller's {len(packets)} packets found"
    held_back = [offset % PACKET_BYTES for offset in offsets if offset % JITTER_FRAME_BYTES]
    assert held_back == [], f"{len(held_back)} of {len(offsets)} packets began inside a frame, " \
                            f"{sorted(set(held_back))} bytes into it"
