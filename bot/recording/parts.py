"""The recording's byte stream cut into the upload's parts.

Part n holds bytes [(n-1)·P, n·P) of the WAV stream (P = the plan's `part_bytes`, S3's 5 MiB floor
or more), the first starting with the header. A full part is uploaded once; the part still filling
is uploaded again at each checkpoint under the same number (the store keeps the newest upload of a
part number), so what a crash loses is at most one checkpoint's worth.

Memory: each part is one buffer of P bytes, allocated once and written in place; an upload is a
view of it (the bytes a view covers are never written again), never a copy, so a long call costs
the part filling and the one being uploaded, and a process's memory does not creep with the call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartUpload:
    number: int
    data: memoryview
    full: bool  # will not change again (a full part, or the recording's last)


class PartCutter:
    def __init__(self, part_bytes: int, header: bytes) -> None:
        self._part_bytes = part_bytes
        self._buffer = bytearray(part_bytes)
        self._buffer[:len(header)] = header
        self._filled = len(header)
        self.number = 1  # the part being filled
        self.total = len(header)  # bytes of the stream so far
        self._dirty = True  # written to since its last upload

    def write(self, data: bytes) -> list[PartUpload]:
        """Appends `data`; the parts it filled, to upload now."""
        self.total += len(data)
        self._dirty = self._dirty or bool(data)
        filled: list[PartUpload] = []
        taken = 0
        while taken < len(data):
            room = min(self._part_bytes - self._filled, len(data) - taken)
            self._buffer[self._filled:self._filled + room] = data[taken:taken + room]
            self._filled += room
            taken += room
            if self._filled == self._part_bytes:
                filled.append(PartUpload(self.number, memoryview(self._buffer), full=True))
                self._buffer = bytearray(self._part_bytes)  # the full one is the uploader's now
                self._filled = 0
                self.number += 1
        return filled

    def checkpoint(self) -> PartUpload | None:
        """The part still filling as it is now, when it changed since its last upload."""
        if not self._dirty or not self._filled:
            return None
        self._dirty = False
        return PartUpload(self.number, memoryview(self._buffer)[:self._filled], full=False)

    def last(self) -> PartUpload | None:
        """The recording's last part (smaller than the others: only the last may be)."""
        if not self._filled:
            return None
        self._dirty = False
        return PartUpload(self.number, memoryview(self._buffer)[:self._filled], full=True)

    @property
    def parts(self) -> int:
        return self.number if self._filled else self.number - 1
