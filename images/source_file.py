"""Reading one of a bot project's Python files at deploy, when the project may be hostile.

The plan reads a user's source (never runs it) on the machine that deploys, so a file must not make
the read hang, exhaust memory, or read what the image will not hold:

- a link that leaves the project: the image build copies the link, not the file it names, so the
  check would read a file of the deploying machine (which the bot never runs) and pass a bot that
  fails in its image;
- anything but a regular file (a FIFO would block the read forever, a device never ends): opened
  without blocking, and its kind checked on the open file, not on the name;
- a file too large for a bot's source (which is tens of KiB): its syntax tree takes hundreds of times
  its size in memory, and its parse seconds; read at most one byte past the bound.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 512 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class SourceRefused(Exception):
    """A project's file the deploy check will not read; the message names the file and the way out.
    Not a ValueError or an OSError: the readers that pass over a file they cannot parse must not
    pass over this."""


def read_source(path: Path, project: Path) -> bytes:
    """The bytes of `path`, a Python file of the project at `project`, as the image holds them.
    OSError when it cannot be opened (missing, unreadable); SourceRefused as above."""
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
            raise SourceRefused(f"{path} is not a regular file: make it the Python file itself")
        source = handle.read(MAX_FILE_BYTES + 1)
    if len(source) > MAX_FILE_BYTES:
        raise SourceRefused(f"{path} is over {MAX_FILE_BYTES // 1024} KiB, more than a bot's source: keep data "
                            "(prompts, tables, models) in files of their own that the bot reads when it runs")
    return source
