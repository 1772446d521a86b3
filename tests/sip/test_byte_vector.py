"""The caller's audio read out of PJSUA2's ByteVector in one copy (the edge's port, on PJSIP's media
thread), byte for byte what SWIG's own element-by-element conversion gives, and SWIG's way kept where
the vector's layout is not the one known."""

from __future__ import annotations

import pjsua2 as pj
import pytest

from sipedge import byte_vector
from sipedge.byte_vector import fill_frame, vector_bytes
from sipedge.media_port import MediaPort
from sipedge.playout import Playout


@pytest.mark.parametrize("data", [b"", b"\x01", bytes(range(256)) + bytes(64), bytes(range(256)) * 32])
def test_the_bytes_are_swigs_own(data: bytes) -> None:
    vector = pj.ByteVector(data)
    assert vector_bytes(vector) == bytes(vector) == data


def test_the_callers_frame_is_copied_at_once_not_fetched_byte_by_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    heard: list[bytes] = []
    port = MediaPort(heard.append, Playout())
    frame = pj.MediaFrame()
    frame.type = pj.PJMEDIA_TYPE_AUDIO
    frame.buf = pj.ByteVector(bytes(range(256)) + bytes(64))
    frame.size = 320

    def one_by_one(self: pj.ByteVector, *args: object) -> None:
        raise AssertionError("the audio went through SWIG's iterator, a Python call per byte")

    monkeypatch.setattr(pj.ByteVector, "__iter__", one_by_one)
    monkeypatch.setattr(pj.ByteVector, "__getitem__", one_by_one)
    port.onFrameReceived(frame)
    assert heard == [bytes(range(256)) + bytes(64)]


def test_the_copy_outlives_the_vector() -> None:
    vector = pj.ByteVector(b"\x05" * 320)
    data = vector_bytes(vector)
    del vector
    pj.ByteVector(b"\x00" * 320)  # likely reuses the freed storage
    assert data == b"\x05" * 320


def test_swigs_way_where_the_layout_is_not_the_one_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(byte_vector, "_LAYOUT_KNOWN", False)
    assert vector_bytes(pj.ByteVector(b"\x07\x08" * 160)) == b"\x07\x08" * 160


def test_the_bots_frame_is_written_into_pjsuas_buffer_not_built_byte_by_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    playout = Playout()
    playout.add(b"\x01\x02" * 100)  # 12.5 ms: the rest of the 20 ms frame is silence
    port = MediaPort(lambda pcm: None, playout)
    frame = pj.MediaFrame()

    def one_by_one(self: pj.ByteVector, *args: object) -> None:
        raise AssertionError("the audio went through SWIG's conversion, a Python call per byte")

    monkeypatch.setattr(pj.ByteVector, "__init__", one_by_one)
    frame.size = 320  # PJSUA2 sets the size the bridge asks for before it calls the port
    port.onFrameRequested(frame)
    assert (frame.type, frame.size) == (pj.PJMEDIA_TYPE_AUDIO, 320)
    assert vector_bytes(frame.buf) == b"\x01\x02" * 100 + bytes(120)


@pytest.mark.parametrize("layout_known", [True, False])
def test_a_frame_filled_holds_the_bytes_whatever_it_held(monkeypatch: pytest.MonkeyPatch, layout_known: bool) -> None:
    monkeypatch.setattr(byte_vector, "_LAYOUT_KNOWN", layout_known)
    frame = pj.MediaFrame()
    for data in (b"\x09" * 640, b"\x03\x04" * 160, b"\x05" * 320):
        fill_frame(frame, data)
        assert bytes(frame.buf) == data


def test_the_copy_takes_the_size_it_checked_not_a_later_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if another thread grew the vector between the layout check and the copy (SWIG's calls let go of
    the GIL): a second `size()` would have the copy run past the storage the check vouched for."""
    vector = pj.ByteVector(b"\x06" * 320)
    sizes = iter([320])
    monkeypatch.setattr(pj.ByteVector, "size", lambda self: next(sizes, 320 + 64))
    assert vector_bytes(vector) == b"\x06" * 320


def test_a_frame_buffer_hands_each_frame_its_own_bytes_and_silence_as_zeros() -> None:
    """The buffer's vector is reused frame after frame: a frame already handed keeps what it was given
    (PJSUA2's assignment copies), and silence after audio is zeros, not the last audio."""
    frames = byte_vector.FrameBuffer(320)
    first, second, quiet = pj.MediaFrame(), pj.MediaFrame(), pj.MediaFrame()
    frames.fill(first, b"\x01\x02" * 160)
    frames.fill(second, b"\x03" * 320)
    frames.silence(quiet)
    assert (bytes(first.buf), bytes(second.buf), bytes(quiet.buf)) == (b"\x01\x02" * 160, b"\x03" * 320, bytes(320))


@pytest.mark.parametrize("layout_known", [True, False])
def test_a_frame_buffer_takes_a_frame_of_another_size_as_fill_frame_does(monkeypatch: pytest.MonkeyPatch,
                                                                        layout_known: bool) -> None:
    monkeypatch.setattr(byte_vector, "_LAYOUT_KNOWN", layout_known)
    frames, frame = byte_vector.FrameBuffer(320), pj.MediaFrame()
    for data in (b"\x09" * 640, b"\x05" * 320, b"\x07" * 160):
        frames.fill(frame, data)
        assert bytes(frame.buf) == data


def test_the_port_gives_silence_while_the_bot_says_nothing_then_its_audio() -> None:
    playout = Playout()
    port = MediaPort(lambda pcm: None, playout)
    frames = []
    for audio in (b"", b"\x04\x05" * 160, b""):
        playout.add(audio)
        frame = pj.MediaFrame()
        frame.size = 320
        port.onFrameRequested(frame)
        frames.append((frame.type, bytes(frame.buf)))
    assert frames == [(pj.PJMEDIA_FRAME_TYPE_AUDIO, bytes(320)), (pj.PJMEDIA_FRAME_TYPE_AUDIO, b"\x04\x05" * 160),
                      (pj.PJMEDIA_FRAME_TYPE_AUDIO, bytes(320))]
