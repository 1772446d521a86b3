"""A child's output, line by line, read in chunks of CHUNK_BYTES whatever its lines' lengths. asyncio's
`readline` raises past its 64 KiB limit, and Kamailio's parser logs a whole malformed datagram in one entry
(newlines and all): a reader that died there would leave the pipe undrained, and the child blocked on its
next write. A line over `most` bytes is cut to its first `most`, the rest read and dropped, never held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

CHUNK_BYTES = 16384
LINE_BYTES = 4096  # a line's bytes kept: a Kamailio entry of its own is a few hundred


async def lines(stream: asyncio.StreamReader, most: int = LINE_BYTES) -> AsyncIterator[bytes]:
    """Each line of `stream` until it closes, ending in one newline; one cut short says how many bytes it lost."""
    async for kept, over in cut_lines(stream, most):
        yield _finished(kept, over)


async def cut_lines(stream: asyncio.StreamReader, most: int = LINE_BYTES) -> AsyncIterator[tuple[bytes, int]]:
    """Each line of `stream` until it closes, without its newline: its first `most` bytes, and how many more
    it had (for a reader that shows the line otherwise, and cuts it again: sipedge/log_line.py)."""
    head, over = bytearray(), 0
    while chunk := await stream.read(CHUNK_BYTES):
        *ended, rest = chunk.split(b"\n")
        for part in ended:
            over += _add(head, part, most)
            yield bytes(head), over
            head.clear()
            over = 0
        over += _add(head, rest, most)
    if head or over:
        yield bytes(head), over


def _add(head: bytearray, part: bytes, most: int) -> int:
    """Adds what of `part` fits within `most`; the bytes that did not."""
    room = max(0, most - len(head))
    head += part[:room]
    return max(0, len(part) - room)


def _finished(head: bytes, over: int) -> bytes:
    return head + (f" [cut: {over} bytes more]".encode() if over else b"") + b"\n"
