"""A PJSUA2 ByteVector's bytes (a C++ std::vector<unsigned char>) copied out, or in, in one go.

SWIG's own conversions go one element at a time through Python: `bytes(vector)` took about 0.5 ms
for a 20 ms frame of the caller's audio, on PJSIP's media thread and holding the GIL (half the
edge's CPU per call), and `ByteVector(data)` for the bot's 30-50 µs. The vector's storage is instead
used where the vector says it is: libstdc++ keeps its begin and end pointers first. That layout is
checked once against SWIG's own reading and then on every use against `size()`; where either
disagrees, SWIG's way is used."""

from __future__ import annotations

import ctypes

import pjsua2 as pj

_BeginEnd = ctypes.c_void_p * 2


def _storage(vector: pj.ByteVector) -> tuple[int, int] | None:
    """Where `vector`'s bytes are and how many, read together (address, size), where its layout is the one
    known and it holds any. Whoever copies takes this size, never a second `size()`: SWIG's wrappers let
    go of the GIL, so another thread may resize the vector in between, and the second size would be read
    from storage that may already be freed."""
    size = vector.size()
    begin, end = _BeginEnd.from_address(int(vector.this))
    if not size or begin is None or end is None or end - begin != size:
        return None
    return int(begin), size


def _read_storage(vector: pj.ByteVector) -> bytes | None:
    storage = _storage(vector)
    return None if storage is None else ctypes.string_at(*storage)


def _layout_checked() -> bool:
    probe = pj.ByteVector(bytes(range(256)) * 2)
    return _read_storage(probe) == bytes(probe)


_LAYOUT_KNOWN = _layout_checked()


def vector_bytes(vector: pj.ByteVector) -> bytes:
    """`vector`'s bytes, valid after the vector itself is gone."""
    if _LAYOUT_KNOWN and (data := _read_storage(vector)) is not None:
        return data
    return bytes(vector)


def fill_frame(frame: pj.MediaFrame, data: bytes) -> None:
    """`frame`'s buffer (PJSUA2's, lent to a callback) holding `data`."""
    vector = frame.buf
    vector.resize(len(data))
    if _LAYOUT_KNOWN and (storage := _storage(vector)) is not None and storage[1] == len(data):
        ctypes.memmove(storage[0], data, len(data))
    else:
        frame.buf = pj.ByteVector(data)


class FrameBuffer:
    """A port's outgoing frames, `size` bytes each, kept in one ByteVector whose storage never moves: a frame
    is copied into it (through a memoryview of that storage: ctypes.memmove would let go of the GIL, which the
    event loop may then take for milliseconds) and handed to PJSUA2's frame in one assignment, which C++
    copies, where fill_frame takes four SWIG calls (the frame's vector, its resize, its size, its storage).
    Silence is a vector of zeros made once. Where the layout is not the one known, or a frame is not `size`,
    fill_frame."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vector = pj.ByteVector(bytes(size))
        self._silence = pj.ByteVector(bytes(size))
        storage = _storage(self._vector) if _LAYOUT_KNOWN else None
        self._storage = (memoryview((ctypes.c_ubyte * size).from_address(storage[0])).cast("B")
                         if storage is not None and storage[1] == size else None)

    def fill(self, frame: pj.MediaFrame, data: bytes) -> None:
        """`frame`'s buffer holding `data`; on one thread only (PJSIP's media clock, for one port)."""
        if self._storage is None or len(data) != self.size:
            fill_frame(frame, data)
            return
        self._storage[:] = data
        frame.buf = self._vector

    def silence(self, frame: pj.MediaFrame) -> None:
        frame.buf = self._silence
