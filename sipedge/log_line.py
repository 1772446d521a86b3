"""A line of another program's log (Kamailio's, which carries a sender's text) as the edge's log shows it:
behind a prefix, escaped, then cut, so that it is one line of at most `most` bytes, whatever it held.
Escaped: ASCII control characters (but tab) and bytes that are no UTF-8 as `\\xNN`; C1 controls and
Unicode's line and paragraph separators as `\\uNNNN` (a terminal or log viewer acts on both). Cut after
escaping, since escaping can make a line four times as long; the cut says how many of the line's own
bytes were not shown."""

from __future__ import annotations

import re

from sipedge.stream_lines import LINE_BYTES

# Surrogates stand for the bytes that were no UTF-8 (decoded with "surrogateescape").
_UNSAFE_CHARACTERS = "\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\udc80-\udcff"
UNSAFE = re.compile(f"[{_UNSAFE_CHARACTERS}]")
PIECES = re.compile(f"[{_UNSAFE_CHARACTERS}]|[^{_UNSAFE_CHARACTERS}]+")  # one to escape, or a run to keep


def text_of(raw: bytes) -> str:
    """`raw` as text, each byte that is no UTF-8 kept as a surrogate (for `shown`)."""
    return raw.decode("utf-8", "surrogateescape")


def shown(prefix: bytes, text: str, over: int = 0, most: int = LINE_BYTES) -> bytes:
    """`prefix` and `text` (from `text_of`; without its newline, `over` more bytes of it already cut off), escaped
    and cut to at most `most` bytes, newline included."""
    whole = prefix + UNSAFE.sub(_escaped, text).encode() + b"\n"
    if len(whole) <= most and not over:
        return whole
    total = len(text.encode("utf-8", "surrogateescape")) + over
    room = most - len(prefix) - len(_cut(total)) - 1
    body, kept = bytearray(), 0
    for found in PIECES.finditer(text):
        piece = found[0]
        escaped = _escaped(found) if UNSAFE.fullmatch(piece) else piece
        size = len(escaped.encode())
        if size > room - len(body):
            if escaped is piece:  # plain text: as much as fits, cut between characters
                part = piece.encode()[:room - len(body)].decode("utf-8", "ignore")
                body += part.encode()
                kept += len(part.encode())
            break
        body += escaped.encode()
        kept += len(piece.encode("utf-8", "surrogateescape"))
    return prefix + bytes(body) + (_cut(total - kept) if total > kept else b"") + b"\n"


def _escaped(found: re.Match[str]) -> str:
    code = ord(found[0])
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def _cut(more: int) -> bytes:
    return f" [cut: {more} bytes more]".encode()
