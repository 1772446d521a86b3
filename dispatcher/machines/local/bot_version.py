"""Which version of the bot's files an idle local bot imported: the image name local bots report.

A reserve bot imports the bot file (and its folder's modules) before its session; the developer
then edits `bot.py` and expects the next Connect to run the edit. The local provider's `bot_image`
is this fingerprint of the bot's folder, so an idle bot of an older one is never claimed and the
reserve retires it (as it retires a cloud bot of an old image): the next session runs the new code.

The fingerprint covers each Python file's and the project files' name, size and modification time
(an editor's save changes it), skipping virtualenvs, caches and hidden folders, at most
`MAX_FILES` of them; it is read again at most once a `TTL_SECONDS`, as claims and the planner ask.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

MAX_FILES = 2000
TTL_SECONDS = 0.5
PROJECT_FILES = frozenset({"pyproject.toml", "uv.lock", "requirements.txt", ".env"})
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "venv", "env", "build", "dist"})


class BotFilesVersion:
    def __init__(self, bot_file: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.bot_file = bot_file
        self._clock = clock
        self._read_at: float | None = None
        self._version = ""

    def current(self) -> str:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= TTL_SECONDS or now < self._read_at:
            self._version, self._read_at = fingerprint(self.bot_file), now
        return self._version


def fingerprint(bot_file: Path) -> str:
    digest = hashlib.sha256(str(bot_file).encode())
    for path in _files(bot_file.parent, bot_file):
        try:
            stat = path.stat()
        except OSError:  # removed while we looked: its absence is the change
            continue
        digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return "dev-" + digest.hexdigest()[:12]


def _files(folder: Path, bot_file: Path) -> Iterator[Path]:
    yield bot_file
    found = 0
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in SKIPPED_FOLDERS)
        for name in sorted(names):
            if name.endswith(".py") or name in PROJECT_FILES:
                path = Path(root, name)
                if path != bot_file:
                    yield path
                    found += 1
                    if found >= MAX_FILES:
                        return
