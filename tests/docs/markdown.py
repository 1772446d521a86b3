"""Just enough Markdown for the docs test: links, heading anchors, fenced blocks and their markers.

Anchors follow GitHub's rule: the heading's text, lower-cased, with everything but letters,
digits, spaces, hyphens and underscores removed, spaces turned into hyphens, and `-1`, `-2`, …
added to repeats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
MARKER = re.compile(r"^<!--\s*runnable(?::\s*([\w-]+))?\s*-->\s*$")
EXTERNAL = ("http://", "https://", "mailto:", "ftp://")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    marker: str | None  # None: not runnable; "" a plain `<!-- runnable -->`; else its kind


@dataclass(frozen=True)
class Link:
    path: Path
    line: int
    target: str


def _closes(line: str, fence: str) -> bool:
    """A closing fence: the opening's character, at least as many, and nothing else."""
    stripped = line.strip()
    return stripped.startswith(fence) and not stripped.strip(fence[0])


def _prose_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced blocks."""
    out, fence = [], None
    for number, line in enumerate(lines, 1):
        opening = FENCE.match(line.strip())
        if fence is None and opening:
            fence = opening.group(1)[0] * len(opening.group(1))
            continue
        if fence is not None:
            if _closes(line, fence):
                fence = None
            continue
        out.append((number, line))
    return out


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose_lines(path.read_text().splitlines()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[Link]:
    return [Link(path, number, match.group(1)) for number, line in _prose_lines(path.read_text().splitlines())
            for match in LINK.finditer(INLINE_CODE.sub("", line))]  # `[a](b)` in code is no link


def broken_links(files: list[Path]) -> list[str]:
    """Every relative link whose file or `#anchor` does not exist, as `path:line: target (why)`."""
    problems = []
    for path in files:
        for link in links(path):
            if link.target.startswith(EXTERNAL):
                continue
            file_part, _, anchor = link.target.partition("#")
            target = (path.parent / file_part).resolve() if file_part else path
            where = f"{path}:{link.line}: {link.target}"
            if not target.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                problems.append(f"{where} (no heading #{anchor} in {target.name})")
            elif anchor and target.suffix != ".md":
                problems.append(f"{where} (an anchor into a file that is not Markdown)")
    return problems


def blocks(path: Path) -> list[Block]:
    """The fenced blocks, each with the runnable marker on the line before it (if any)."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index].strip())
        if not opening:
            index += 1
            continue
        fence = opening.group(1)
        end = index + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        marker = MARKER.match(lines[index - 1].strip()) if index > 0 else None
        found.append(Block(path, index + 1, opening.group(2).strip(), "\n".join(lines[index + 1:end]) + "\n",
                           (marker.group(1) or "") if marker else None))
        index = end + 1
    return found


def stray_markers(path: Path) -> list[str]:
    """Markers not followed by a fenced block (a typo would otherwise silently run nothing)."""
    lines = path.read_text().splitlines()
    return [f"{path}:{n}: runnable marker not followed by a fenced block"
            for n, line in enumerate(lines, 1)
            if MARKER.match(line.strip()) and (n >= len(lines) or not FENCE.match(lines[n].strip()))]
