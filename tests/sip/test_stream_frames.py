"""The call's `media` frames built around a fixed text, not `json.dumps` of a dict each frame: the very
text json.dumps gives, for every payload and for any stream id."""

from __future__ import annotations

import base64
import json
import random

import pytest

from sipedge import stream_frames

STREAM_IDS = ["0f3c9a", 'a "quoted" id', "back\\slash", "ünïcode ☎", "new\nline", ""]


def dumped(stream_id: str, pcm: bytes) -> str:
    return json.dumps({"event": "media", "stream_sid": stream_id,
                       "media": {"payload": base64.b64encode(pcm).decode("ascii")}})


@pytest.mark.parametrize("stream_id", STREAM_IDS)
def test_a_media_frame_is_the_text_json_dumps_gives(stream_id: str) -> None:
    media = stream_frames.media_frames(stream_id)
    randomly = random.Random(7)
    payloads = [bytes(size) for size in range(0, 8)] + [bytes(range(256)) * 2, b"\xff" * 320, b"\xfb\xef" * 160]
    payloads += [randomly.randbytes(randomly.randrange(0, 1000)) for _ in range(500)]
    for pcm in payloads:
        assert media(pcm) == dumped(stream_id, pcm)
        assert stream_frames.media(stream_id, pcm) == dumped(stream_id, pcm)


def test_the_bots_frame_reads_back_what_the_edge_sends() -> None:
    pcm = bytes(range(256)) + bytes(64)
    assert stream_frames.read_bot_frame(stream_frames.media_frames("s")(pcm)) == stream_frames.BotFrame(pcm)
