"""Reading one of a bot project's files at deploy (its Python, its dependency files), when the project may be hostile.

The plan reads a user's files (never runs them) on the machine that deploys, so a file must not make
the read hang, exhaust memory, or read what the image will not hold:

- a link that leaves the project: the image build copies the link, not the file it names, so the
  check would read a file of the deploying machine (which the bot never runs), pass a bot that fails
  in its image, and quote that file's lines in its refusals (a `requirements.txt` linked to a
  credentials file);
- anything but a regular file (a FIFO would block the read forever, a device never ends): opened
  without blocking, and its kind checked on the open file, not on the name;
- a file too large for what it is (a bot's source is tens of KiB): a syntax tree takes hundreds of
  times its source's size in memory, and its parse seconds; read at most one byte past the bound.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 512 * 1024  # one Python file
MAX_DEPENDENCIES_BYTES = 1024 * 1024  # pyproject.toml, requirements.txt
MAX_LOCK_BYTES = 32 * 1024 * 1024  # uv.lock: a few hundred packages' hashes are a few MB
_TOO_LARGE_SOURCE = ("more than a bot's source: keep data (prompts, tables, models) in files of their own that the "
                     "bot reads when it runs")
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class SourceRefused(Exception):
    """A project's file the deploy check will not read; the message names the file and the way out.
    Not a ValueError or an OSError: the readers that pass over a file they cannot parse must not
    pass over this."""


def read_source(path: Path, project: Path) -> bytes:
    """The bytes of `path`, a Python file of the project at `project`, as the image holds them.
    OSError when it cannot be opened (missing, unreadable); SourceRefused as above."""
    return read_project_file(path, project, MAX_FILE_BYTES, _TOO_LARGE_SOURCE)


def read_project_file(path: Path, project: Path, max_bytes: int, too_large: str) -> bytes:
    """The bytes of `path`, a file of the project at `project`, at most `max_bytes` of them (`too_large`
    says why more is wrong). OSError when it cannot be opened; SourceRefused as above."""
    try:
        real, root = path.resolve(), project.resolve()
    except RuntimeError:  # Python 3.11's Path.resolve on a loop of links
        raise SourceRefused(f"{path} is a loop of links: make it the file itself") from None
    if not real.is_relative_to(root):
        raise SourceRefused(f"{path} is a link to {real}, outside the project {project}: the image build copies "
                            "the link, not the file it names. Put the file itself in the project")
    descriptor = os.open(real, _OPEN_FLAGS)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SourceRefused(f"{path} is not a regular file: make it the file itself")
        content = handle.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise SourceRefused(f"{path} is over {max_bytes // 1024} KiB, {too_large}")
    return content
