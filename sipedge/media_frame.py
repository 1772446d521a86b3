"""A PJSUA2 MediaFrame's type and bytes read, and its type set, where they lie rather than through SWIG.

PJSIP's media clock hands each call's port a MediaFrame twice a tick, holding the GIL for Python. Each of
SWIG's accessors (the frame's type, its size, its buffer, the buffer's size) lets go of the GIL around a
one-line C++ call and takes it back: with the event loop waiting for the GIL, that is a hand-over to the
loop and back, two thread wake-ups, for every accessor. pj::MediaFrame is {pjmedia_frame_type type;
ByteVector buf; unsigned size;}, the vector libstdc++'s three pointers (sipedge/byte_vector.py): that
layout is checked once against SWIG's own reading, and on every read against the frame's own size; where
either disagrees, SWIG's accessors are used."""

from __future__ import annotations

import ctypes

import pjsua2 as pj

from sipedge.byte_vector import vector_bytes


class _Layout(ctypes.Structure):
    _fields_ = (("type", ctypes.c_int), ("begin", ctypes.c_void_p), ("end", ctypes.c_void_p),
                ("capacity", ctypes.c_void_p), ("size", ctypes.c_uint))


def _layout(frame: pj.MediaFrame) -> _Layout:
    if not isinstance(frame, pj.MediaFrame):  # another object's memory would be read, and written, as a frame's
        raise TypeError(f"a pjsua2.MediaFrame is read here, not a {type(frame).__name__}")
    return _Layout.from_address(int(frame.this))


def _layout_checked() -> bool:
    probe = pj.MediaFrame()
    data = bytes(range(256)) + bytes(range(64))
    probe.type, probe.buf, probe.size = pj.PJMEDIA_FRAME_TYPE_AUDIO, pj.ByteVector(data), len(data)
    seen = _layout(probe)
    if (seen.type, seen.size) != (pj.PJMEDIA_FRAME_TYPE_AUDIO, len(data)) or not seen.begin or not seen.end:
        return False
    if seen.end - seen.begin != len(data) or ctypes.string_at(seen.begin, len(data)) != data:
        return False
    seen.type = pj.PJMEDIA_FRAME_TYPE_NONE
    return bool(probe.type == pj.PJMEDIA_FRAME_TYPE_NONE)


_LAYOUT_KNOWN = _layout_checked()


def audio_in(frame: pj.MediaFrame) -> bytes:
    """The PCM of a frame PJSUA2 hands the port (`onFrameReceived`); b"" for one with no audio."""
    if _LAYOUT_KNOWN:
        seen = _layout(frame)
        if seen.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or not seen.size:
            return b""
        if seen.begin and seen.end and seen.end - seen.begin == seen.size:
            return ctypes.string_at(seen.begin, seen.size)
    if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or not frame.size:
        return b""
    return vector_bytes(frame.buf)


def mark_audio(frame: pj.MediaFrame) -> None:
    """The frame PJSUA2 asks the port for (`onFrameRequested`) is audio."""
    if _LAYOUT_KNOWN:
        _layout(frame).type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    else:
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
