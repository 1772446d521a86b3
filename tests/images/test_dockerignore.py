"""images/dockerignore.py decides as BuildKit does: the cases below are moby/patternmatcher v0.6.1's own
tests (patternmatcher_test.go TestMatches and the single-rule tests, ignorefile_test.go TestReadAll),
plus fsutil's walk over real folders (filter.go: excluded directories, exceptions inside them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pytest

from images.dockerignore import SKIP_DIR, PatternMatcher, read_patterns, walk

# patternmatcher_test.go:119-187 (TestMatches `tests`), plus :191-195 (POSIX only).
SINGLE = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True), ("**", "/", True),
    ("**/", "/", True), ("**", "dir/file", True), ("**/", "dir/file", True), ("**", "dir/file/", True),
    ("**/", "dir/file/", True), ("**/**", "dir/file", True), ("**/**", "dir/file/", True), ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True), ("dir/**", "dir/dir2/file", True), ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True), ("**file", "file", True), ("**file", "dir/file", True),
    ("**/file", "dir/file", True), ("**file", "dir/dir/file", True), ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True), ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True), ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True), ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True), ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True), ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False), ("a[^b-d]e", "aze", True), (".*", ".foo", True),
    (".*", "foo", False), ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False), ("a\\\\", "a\\", True), ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True), ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False),
    ("abc/**", "abc/def", True), ("abc/**", "abc/def/ghi", True), ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True), ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True), ("a\\*b", "a*b", True),
]
# patternmatcher_test.go:182-187 (multiPatternTests) and :21-75 (the single-rule tests).
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["*"], "fileutils.go", True), (["*.go"], "fileutils.go", True), (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False), (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False), (["*.go", "!fileutils.go"], "fileutils.go", False),
    ([], "any/path/there", False),
]
CASES = [([pattern], text, excluded) for pattern, text, excluded in SINGLE] + MULTI


def _with_parent_results(matcher: PatternMatcher, path: str) -> bool:
    """As fsutil's walk asks: each parent directory first, its answer handed down (patternmatcher_test.go:233-249)."""
    info: tuple[bool, ...] = ()
    parts = path.split("/")
    for depth in range(1, len(parts)):
        _, info = matcher.matches_using_parent_results("/".join(parts[:depth]), info)
    return matcher.matches_using_parent_results(path, info)[0]


@pytest.mark.parametrize(("patterns", "path", "excluded"), CASES)
def test_a_path_is_excluded_exactly_when_buildkits_matcher_excludes_it(
        patterns: list[str], path: str, excluded: bool) -> None:
    matcher = PatternMatcher(patterns)
    assert matcher.matches_or_parent_matches(path) is excluded
    assert _with_parent_results(matcher, path) is excluded
    assert matcher.matches_using_parent_results(path, ())[0] is excluded  # no parent known


@pytest.mark.parametrize("patterns", [["!"], ["["], ["foo\\"]])
def test_a_malformed_pattern_is_refused_as_buildkit_refuses_it(patterns: list[str]) -> None:
    with pytest.raises(ValueError, match="pattern"):
        PatternMatcher(patterns)


def test_an_ignore_file_is_read_as_buildkit_reads_it() -> None:
    """ignorefile_test.go TestReadAll, plus a byte-order mark and CRLF line ends."""
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert read_patterns(content) == ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"]
    assert read_patterns("\ufeff# comment\r\n  ./a/../b/  \r\n  # not a comment\n") == ["b", "# not a comment"]


def _tree(root: Path, *files: str) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root


def _kept(root: Path, patterns: list[str]) -> list[str]:
    seen: list[str] = []

    def visit(path: str, lstat: os.stat_result) -> None:
        seen.append(path)

    walk(root, patterns, visit)
    return seen


def test_a_walk_keeps_an_allow_lists_exceptions_and_skips_what_no_exception_reaches(tmp_path: Path) -> None:
    root = _tree(tmp_path, "a.txt", "keep/x.py", "keep/sub/y.py", "drop/z.py", "deep/inner/kept.py", "deep/other.py")
    assert _kept(root, ["*", "!keep", "!deep/inner/kept.py"]) == [
        "deep", "deep/inner", "deep/inner/kept.py", "keep", "keep/sub", "keep/sub/y.py", "keep/x.py"]


def test_a_walk_enters_excluded_folders_when_an_exception_has_a_wildcard(tmp_path: Path) -> None:
    """docker-build's "!foo/*/bar" case (context_test.go:138-179): a glob exception must be looked for inside."""
    root = _tree(tmp_path, "foo/a/bar", "foo/a/baz", "foo/b/bar", "other/bar")
    assert [p for p in _kept(root, ["foo", "other", "!foo/*/bar"]) if "." not in p and p.count("/") == 2] == [
        "foo/a/bar", "foo/b/bar"]


def test_a_walk_visits_names_in_byte_order_and_honours_skip_dir(tmp_path: Path) -> None:
    root = _tree(tmp_path, "B", "a/1", "a/2", "a/3", "a.txt", "_")
    order: list[str] = []

    def visit(path: str, lstat: os.stat_result) -> Literal["skip-dir"] | None:
        order.append(path)
        return SKIP_DIR if path == "a/2" else None  # a file's SkipDir skips the rest of its folder

    walk(root, [], visit)
    assert order == ["B", "_", "a", "a/1", "a/2", "a.txt"]
