"""A command's progress as one line on stderr: a terminal gets it rewritten in place each second; a log (not a
terminal) a line every ten seconds. `voicefleet loadtest` and `voicefleet calls campaign` show theirs with it."""

from __future__ import annotations

import sys
import time
from typing import TextIO

TERMINAL_EVERY = 1.0
LOG_EVERY = 10.0


class StatusLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr  # at run time: whatever stderr is then
        self.terminal = self.stream.isatty()
        self._last = -LOG_EVERY

    def due(self) -> bool:
        """Whether a line shown now would be written (a caller skips making it otherwise)."""
        return time.monotonic() - self._last >= (TERMINAL_EVERY if self.terminal else LOG_EVERY)

    def show(self, text: str, *, final: bool = False) -> None:
        if not final and not self.due():
            return
        self._last = time.monotonic()
        if self.terminal:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
