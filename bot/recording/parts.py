"""The recording's byte stream cut into the upload's parts.

Part n holds bytes [(n-1)·P, n·P) of the WAV stream (P = the plan's `part_bytes`, S3's 5 MiB floor
or more), the first starting with the header. A full part is uploaded once; the part still filling
is uploaded again at each checkpoint under the same number (the store keeps the newest upload of a
part number), so what a crash loses is at most one checkpoint's worth. Memory: one part at most.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartUpload:
    number: int
    data: bytes
    full: bool  # will not change again (a full part, or the recording's last)


class PartCutter:
    def __init__(self, part_bytes: int, header: bytes) -> None:
        self._part_bytes = part_bytes
        self._current = bytearray(header)
        self.number = 1  # the part being filled
        self.total = len(header)  # bytes of the stream so far
        self._dirty = True  # written to since its last upload

    def write(self, data: bytes) -> list[PartUpload]:
        """Appends `data`; the parts it filled, to upload now."""
        if not data:
            return []
        self._current += data
        self.total += len(data)
        self._dirty = True
        filled: list[PartUpload] = []
        while len(self._current) >= self._part_bytes:
            filled.append(PartUpload(self.number, bytes(self._current[:self._part_bytes]), full=True))
            del self._current[:self._part_bytes]
            self.number += 1
        return filled

    def checkpoint(self) -> PartUpload | None:
        """The part still filling as it is now, when it changed since its last upload."""
        if not self._dirty or not self._current:
            return None
        self._dirty = False
        return PartUpload(self.number, bytes(self._current), full=False)

    def last(self) -> PartUpload | None:
        """The recording's last part (smaller than the others: only the last may be)."""
        if not self._current:
            return None
        self._dirty = False
        return PartUpload(self.number, bytes(self._current), full=True)

    @property
    def parts(self) -> int:
        return self.number if self._current else self.number - 1
