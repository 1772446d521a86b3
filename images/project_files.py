"""The files the bot image takes from a bot project, and one digest of them: a bot change rebuilds the image.

docker-build's context hash filters the project's named context with the repository's allow-list
`.dockerignore`, so an edit of bot.py would preview as "no changes"; the Images component puts
this digest in the bot images' labels instead, which the provider's Diff compares. The files are
the ones the build really takes (the project's own `.dockerignore`, then the Dockerfile's
COPY_EXCLUDES), counted as git tracks them inside a checkout so two checkouts of one commit get
one digest; `untracked` names the files git does not track. Why, with the provider's and
BuildKit's sources cited: docs/images.md ("What rebuilds an image").
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import subprocess
from pathlib import Path

from images.bot_project import BotProjectError
from images.dockerignore import ignore_file_patterns, walk

# images/bot.Dockerfile's `tar --exclude=` patterns, as GNU tar matches them for exclusion: wildcards
# that match `/` too, tried on the member's name (`./x/y`) and on every tail after a `/`; an excluded
# folder is not entered.
COPY_EXCLUDES = ("./.venv", "./.git", "__pycache__", "*.pyc", "./.env", "./.env.*")
DIGEST_LABEL = "voicefleet.bot-project.digest"


def _copied(path: str) -> bool:
    name = f"./{path}"
    tails = [name] + [name[index + 1:] for index, char in enumerate(name) if char == "/"]
    return not any(fnmatch.fnmatchcase(tail, pattern) for tail in tails for pattern in COPY_EXCLUDES)


def files(project: Path) -> list[tuple[str, os.stat_result]]:
    """(path relative to the project, lstat) of every entry the image takes, folders before what they hold."""
    try:
        excludes = ignore_file_patterns(project / ".dockerignore")
    except OSError:
        excludes = []  # BuildKit ignores an ignore file it cannot read (namedcontext.go:214-216)
    taken: list[tuple[str, os.stat_result]] = []
    skipped: list[str] = []  # folders tar does not enter

    def visit(path: str, lstat: os.stat_result) -> None:
        if any(path.startswith(folder) for folder in skipped):
            return
        if not _copied(path):
            skipped.extend([f"{path}/"] if stat.S_ISDIR(lstat.st_mode) else [])
            return
        if stat.S_ISDIR(lstat.st_mode) or stat.S_ISREG(lstat.st_mode) or stat.S_ISLNK(lstat.st_mode):
            taken.append((path, lstat))  # a pipe or socket in a project is nothing a bot can use

    try:
        walk(project, excludes, visit)
    except ValueError as error:  # a pattern BuildKit would refuse too
        raise BotProjectError(f"{project / '.dockerignore'}: {error}") from None
    except OSError as error:
        raise BotProjectError(f"{project}: cannot read {error.filename}: {error.strerror}") from None
    return taken


def tracked(project: Path) -> set[str] | None:
    """The project's files git tracks (paths relative to it), or None when git is not there, the
    project is not in a checkout, or the checkout tracks none of it."""
    try:
        listed = subprocess.run(["git", "-C", str(project), "ls-files", "-z", "--cached"], capture_output=True,
                                timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:  # not a work tree (or no git): the build's own rules
        return None
    paths = {os.fsdecode(p) for p in listed.stdout.split(b"\0") if p}
    return paths or None


def digest_files(project: Path) -> list[tuple[str, os.stat_result]]:
    """`files(project)` as the digest counts them: in a checkout, what git tracks and the folders
    that hold it."""
    taken = files(project)
    known = tracked(project)
    if known is None:
        return taken
    folders = {"/".join(path.split("/")[:depth]) for path in known for depth in range(1, path.count("/") + 1)}
    return [(path, lstat) for path, lstat in taken if path in known or path in folders]


def untracked(project: Path) -> list[str]:
    """The files (not folders) the build takes that the digest leaves out: in a checkout that tracks
    some of the project, those git does not track. A change to one of them previews no image change,
    so a new module the bot imports, not yet added to git, would deploy the old bot."""
    known = tracked(project)
    if known is None:
        return []
    return [path for path, lstat in files(project) if not stat.S_ISDIR(lstat.st_mode) and path not in known]


def digest(project: Path) -> str:
    """`sha256:<hex>` of the paths, kinds, image modes and contents of `digest_files(project)`.

    Modes count as the image has them (`chmod -R a+rX,go-w`); timestamps do not, so a checkout on
    another machine has the same digest.
    """
    total = hashlib.sha256()
    for path, lstat in digest_files(project):
        mode = lstat.st_mode
        if stat.S_ISLNK(mode):
            kind, content = b"l", os.fsencode(os.readlink(project / path))  # tar copies the link itself
        elif stat.S_ISDIR(mode):
            kind, content = b"d", b""
        else:
            kind, content = b"f", _file_digest(project / path)
        image_mode = (stat.S_IMODE(mode) | 0o444 | (0o111 if mode & 0o111 or kind == b"d" else 0)) & ~0o022
        total.update(b"%s %o %s\0%s\0" % (kind, image_mode, os.fsencode(path), content))
    return f"sha256:{total.hexdigest()}"


def _file_digest(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    except OSError as error:
        raise BotProjectError(f"cannot read {path}: {error.strerror}") from None
