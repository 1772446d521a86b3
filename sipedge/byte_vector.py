"""The bytes of a PJSUA2 ByteVector (a C++ std::vector<unsigned char>) copied in one go.

SWIG's own conversion, `bytes(vector)`, fetches the vector one element at a time through Python:
about 0.5 ms for a 20 ms frame of the caller's audio, on PJSIP's media thread and holding the GIL,
which was half the edge's CPU per call. The vector's storage is instead read where the vector says
it is: libstdc++ keeps its begin and end pointers first. That layout is checked once against SWIG's
own reading and then on every read against `size()`; where either disagrees, SWIG's way is used."""

from __future__ import annotations

import ctypes

import pjsua2 as pj

_BeginEnd = ctypes.c_void_p * 2


def _read_storage(vector: pj.ByteVector) -> bytes | None:
    size = vector.size()
    begin, end = _BeginEnd.from_address(int(vector.this))
    if not size or begin is None or end is None or end - begin != size:
        return None
    return ctypes.string_at(begin, size)


def _layout_checked() -> bool:
    probe = pj.ByteVector(bytes(range(256)) * 2)
    return _read_storage(probe) == bytes(probe)


_LAYOUT_KNOWN = _layout_checked()


def vector_bytes(vector: pj.ByteVector) -> bytes:
    """`vector`'s bytes, valid after the vector itself is gone."""
    if _LAYOUT_KNOWN and (data := _read_storage(vector)) is not None:
        return data
    return bytes(vector)
