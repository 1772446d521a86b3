"""Which files of a folder a build context keeps: `.dockerignore` rules exactly as BuildKit applies them.

A port of the Go code that filters every local build context BuildKit receives and that
pulumi-docker-build hashes, at the versions pulumi-docker-build v0.0.22 pins (go.mod:
moby/patternmatcher v0.6.1, tonistiigi/fsutil 0257b3308df4):

- reading an ignore file: patternmatcher `ignorefile/ignorefile.go:24-73` (ReadAll);
- matching: `patternmatcher.go:42-76` (New), `128-163` (MatchesOrParentMatches), `216-272`
  (MatchesUsingParentResults), `312-440` (Pattern.match, Pattern.compile);
- walking a folder with them: fsutil `filter.go:77-148` (NewFilterFS), `172-381` (filterFS.Walk),
  `417-425` (patternWithoutTrailingGlob), over `fs.go:52-91` (filepath.WalkDir: names in byte order).

The Python libraries at hand do not match it: docker-py's `docker.utils.build.PatternMatcher` ports
the classic builder's older fileutils (one parent directory checked, which patternmatcher.go:85-87
calls buggy) and always keeps `.dockerignore`; `pathspec` is gitignore, where `*.py` matches at any
depth while in a `.dockerignore` it matches only at the root.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

_ESCAPED = set(".+()|{}$")  # patternmatcher.go:28-32: regexp metacharacters that mean nothing in a glob
_PATTERN_CHARS = "*[]?^\\"  # filter.go:98-101
SKIP_DIR: Final = "skip-dir"  # what a walk callback returns for Go's filepath.SkipDir
Visit = Callable[[str, os.stat_result], Literal["skip-dir"] | None]


def read_patterns(text: str) -> list[str]:
    """An ignore file's patterns (ignorefile.go:24-73): `#` comments only at the very start of a line,
    whitespace trimmed, each path cleaned, a leading `/` dropped (the context root is the anchor)."""
    patterns = []
    for number, line in enumerate(text.split("\n")):  # bufio.ScanLines: \n, and a \r before it dropped
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = _clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


def _clean(path: str) -> str:
    """Go's filepath.Clean (posixpath.normpath keeps a leading `//`, Go does not)."""
    cleaned = posixpath.normpath(path) if path else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


@dataclass
class Pattern:
    text: str  # cleaned, without its `!`
    exclusion: bool  # a `!` pattern: an exception that keeps what earlier patterns excluded
    _kind: str = field(default="", init=False)
    _regex: re.Pattern[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._kind, regex = _compile(self.text)
        if regex is not None:
            try:
                self._regex = re.compile(regex)
            except re.error as error:
                raise ValueError(f"invalid .dockerignore pattern {self.text!r}: {error}") from None

    def match(self, path: str) -> bool:
        """Pattern.match (patternmatcher.go:312-343)."""
        if self._kind == "exact":
            return path == self.text
        if self._kind == "prefix":
            return path.startswith(self.text[:-2])
        if self._kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self._regex is not None
        return self._regex.match(path) is not None

    def without_trailing_glob(self) -> str:
        return self.text.removesuffix("/**").removesuffix("/*")


def _compile(pattern: str) -> tuple[str, str | None]:
    """Pattern.compile (patternmatcher.go:345-440): the match kind, and the regex when it needs one."""
    regex, kind, i, first = "^", "exact", 0, True
    if (len(pattern) - len(pattern.rstrip("\\"))) % 2:  # filepath.Match's syntax check (:68); a bad
        raise ValueError(f"invalid .dockerignore pattern {pattern!r}")  # `[` class fails re.compile below
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*" and pattern[i:i + 1] == "*":  # some flavour of `**`; `**/` is eaten as `**`
            i += 2 if pattern[i + 1:i + 2] == "/" else 1
            if i >= len(pattern):  # `**` at the end accepts everything, like .gitignore
                kind, regex = ("prefix", regex) if kind == "exact" else ("regexp", regex + ".*")
            else:
                kind, regex = "regexp", regex + "(.*/)?"  # any number of directories, even none
            if first:
                kind = "suffix"
        elif ch == "*":
            kind, regex = "regexp", regex + "[^/]*"
        elif ch == "?":
            kind, regex = "regexp", regex + "[^/]"
        elif ch in _ESCAPED:
            regex += "\\" + ch
        elif ch == "\\":  # escapes the next character (never the last: checked above)
            kind, regex, i = "regexp", regex + "\\" + pattern[i], i + 1
        elif ch in "[]":
            kind, regex = "regexp", regex + ch
        else:
            regex += ch
        first = False
    return kind, (regex + r"\Z" if kind == "regexp" else None)  # Go's `$`: Python's also matches before a final \n


class PatternMatcher:
    """patternmatcher.New (patternmatcher.go:42-76) over already-read patterns."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = _clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                text = text[1:]
            self.patterns.append(Pattern(text, exclusion))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches_or_parent_matches(self, path: str) -> bool:
        """Whether `path` (slash-separated, relative) is excluded: the last pattern that matches it or
        one of its parent directories decides (patternmatcher.go:128-163)."""
        matched = False
        parents = _parents(path)
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            if pattern.match(path) or any(pattern.match(parent) for parent in parents):
                matched = not pattern.exclusion
        return matched

    def matches_using_parent_results(self, path: str, parent: tuple[bool, ...]) -> tuple[bool, tuple[bool, ...]]:
        """The same decision during a walk, reusing what each pattern said of the parent directory
        (patternmatcher.go:216-272); `()` means nothing is known of the parent."""
        matched = False
        info = [False] * len(self.patterns)
        for index, pattern in enumerate(self.patterns):
            match = parent[index] if parent else False
            if not match:
                if pattern.exclusion != matched:
                    continue  # and, as in Go, the parent result for this pattern stays False
                match = pattern.match(path) or (not parent and any(pattern.match(p) for p in _parents(path)))
            info[index] = match
            if match:
                matched = not pattern.exclusion
        return matched, tuple(info)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def walk(root: Path, excludes: Sequence[str], visit: Visit) -> None:
    """Call `visit(path, lstat)` for every entry of `root` the patterns keep, directories before their
    contents, names in byte order (filter.go:172-381 over filepath.WalkDir). `visit` returning
    SKIP_DIR skips a directory's contents, or, for a file, the rest of its directory (Go's SkipDir)."""
    matcher = PatternMatcher(excludes) if excludes else None
    # filter.go:132-137: only exceptions without glob characters allow skipping an excluded directory.
    prefix_only = matcher is not None and not any(
        p.exclusion and any(c in p.without_trailing_glob() for c in _PATTERN_CHARS) for p in matcher.patterns)
    parents: list[_Parent] = []

    def filtered(path: str, lstat: os.stat_result) -> Literal["skip-dir"] | None:
        if matcher is None:
            return visit(path, lstat)
        while parents and not path.startswith(parents[-1].prefix):
            parents.pop()
        is_dir = stat.S_ISDIR(lstat.st_mode)
        excluded, info = matcher.matches_using_parent_results(path, parents[-1].info if parents else ())
        if excluded and is_dir and prefix_only and not any(
                f"{p.without_trailing_glob()}/".startswith(f"{path}/") for p in matcher.patterns if p.exclusion):
            return SKIP_DIR  # no exception can keep anything inside it
        if is_dir:
            parents.append(_Parent(f"{path}/", info, path, lstat, called=not excluded))
        if excluded:
            return None
        # An excluded folder that holds a kept entry is sent (visited) first (filter.go:336-374).
        for parent in parents[:-1] if is_dir else parents:
            if not parent.called:
                parent.called = True
                if visit(parent.path, parent.lstat) == SKIP_DIR:
                    return SKIP_DIR
        return visit(path, lstat)

    _walk_dir(root, "", filtered)


@dataclass
class _Parent:
    prefix: str  # the folder's path and a slash
    info: tuple[bool, ...]  # what each pattern said of it
    path: str
    lstat: os.stat_result
    called: bool  # visited already


def _walk_dir(root: Path, folder: str, visit: Visit) -> None:
    for name in sorted(os.listdir(root / folder if folder else root), key=os.fsencode):
        path = f"{folder}/{name}" if folder else name
        lstat = os.lstat(root / path)
        is_dir = stat.S_ISDIR(lstat.st_mode)
        if visit(path, lstat) == SKIP_DIR:
            if is_dir:
                continue
            return
        if is_dir:
            _walk_dir(root, path, visit)


def ignore_file_patterns(path: Path) -> list[str]:
    """The patterns of an ignore file, none when there is no such file."""
    try:
        return read_patterns(path.read_text(encoding="utf-8", errors="surrogateescape"))  # Go reads bytes
    except FileNotFoundError:
        return []
