"""The frames PJSUA2 hands the edge's port read and marked where their fields lie (sipedge/media_frame.py),
not through SWIG's accessors, each of which lets go of the GIL on PJSIP's media clock: the same bytes and
type as SWIG's own reading, and SWIG's way kept where the layout is not the one known."""

from __future__ import annotations

import random

import pjsua2 as pj
import pytest

from sipedge import media_frame
from sipedge.media_frame import audio_in, mark_audio
from sipedge.media_port import MediaPort
from sipedge.playout import Playout


def frame_of(data: bytes, kind: int = pj.PJMEDIA_FRAME_TYPE_AUDIO, size: int | None = None) -> pj.MediaFrame:
    frame = pj.MediaFrame()
    frame.type, frame.buf, frame.size = kind, pj.ByteVector(data), len(data) if size is None else size
    return frame


@pytest.mark.parametrize("layout_known", [True, False])
def test_the_audio_read_is_swigs_own(monkeypatch: pytest.MonkeyPatch, layout_known: bool) -> None:
    monkeypatch.setattr(media_frame, "_LAYOUT_KNOWN", layout_known)
    randomly = random.Random(3)
    for data in [bytes(range(256)) + bytes(64), b"\x01", *(randomly.randbytes(randomly.randrange(1, 2000))
                                                         for _ in range(50))]:
        frame = frame_of(data)
        assert audio_in(frame) == bytes(frame.buf) == data


@pytest.mark.parametrize("layout_known", [True, False])
def test_a_frame_without_audio_gives_none(monkeypatch: pytest.MonkeyPatch, layout_known: bool) -> None:
    monkeypatch.setattr(media_frame, "_LAYOUT_KNOWN", layout_known)
    assert audio_in(pj.MediaFrame()) == b""
    assert audio_in(frame_of(b"\x02" * 320, pj.PJMEDIA_FRAME_TYPE_NONE)) == b""
    assert audio_in(frame_of(b"", size=0)) == b""


def test_a_buffer_that_disagrees_with_the_frames_size_is_read_through_swig() -> None:
    """PJSUA2 sizes the buffer to the frame; one that does not match is read as SWIG reads it, not trusted."""
    assert audio_in(frame_of(b"\x03" * 320, size=160)) == b"\x03" * 320


@pytest.mark.parametrize("layout_known", [True, False])
def test_the_frame_is_marked_audio(monkeypatch: pytest.MonkeyPatch, layout_known: bool) -> None:
    monkeypatch.setattr(media_frame, "_LAYOUT_KNOWN", layout_known)
    frame = pj.MediaFrame()
    frame.type = pj.PJMEDIA_FRAME_TYPE_NONE
    mark_audio(frame)
    assert frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO


def test_an_object_other_than_a_frame_is_refused_not_read_as_one() -> None:
    """A ByteVector is 24 bytes where a frame's fields run to 36: read past it, its begin pointer written."""
    vector = pj.ByteVector(b"\x07" * 8)
    with pytest.raises(TypeError, match="MediaFrame"):
        audio_in(vector)
    with pytest.raises(TypeError, match="MediaFrame"):
        mark_audio(vector)
    assert bytes(vector) == b"\x07" * 8


def test_the_port_reads_and_answers_frames_without_swigs_accessors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the bot's frame is handed to PJSUA2 through SWIG (one assignment, which C++ copies)."""
    playout = Playout()
    playout.add(b"\x04\x05" * 160)
    heard: list[bytes] = []
    port = MediaPort(heard.append, playout)
    received, requested = frame_of(b"\x06" * 320), pj.MediaFrame()
    requested.size = 320

    def through_swig(*args: object) -> None:
        raise AssertionError("a SWIG accessor of the frame, which lets go of the GIL")

    for field in ("type", "size"):
        monkeypatch.setattr(pj.MediaFrame, field, property(through_swig, through_swig))
    monkeypatch.setattr(pj.MediaFrame, "buf", property(through_swig, pj.MediaFrame.buf.fset))
    port.onFrameReceived(received)
    port.onFrameRequested(requested)
    monkeypatch.undo()
    assert heard == [b"\x06" * 320]
    assert (requested.type, bytes(requested.buf)) == (pj.PJMEDIA_FRAME_TYPE_AUDIO, b"\x04\x05" * 160)
