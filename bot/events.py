"""Machine-readable JSON lines on stdout: the bot's half of the contract with the machines provider.

stdout carries nothing else (logs go to stderr), so a parent process can read it line by line:
`ready` exactly once, then `connected`, `disconnected`, `ended` (with a reason and exit code).
The user's bot writes to stdout too (a `print`, an `input()` prompt, a C library): `claim_stdout`
gives the events a descriptor of their own and sends the rest to stderr, the log, so a prompt
with no newline cannot glue itself to the next event and hide it from the parent.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from typing import IO, Any


class EventWriter:
    def __init__(self, session_id: str, stream: IO[str] | None = None) -> None:
        self.session_id = session_id  # a reserve bot learns its session at assignment
        self._stream = stream if stream is not None else sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        line = {"event": event, **fields, "session_id": self.session_id, "t": round(time.time(), 3)}
        try:
            self._stream.write(json.dumps(line) + "\n")
            # Flushed per line: the parent waits on `ready` and must not sit behind a pipe buffer.
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            # The parent stopped reading (or closed our stdout): events are best effort, the
            # session itself must go on and end normally.
            pass


def claim_stdout() -> IO[str]:
    """The events' own stream, on the process's stdout; everything else written there from now on
    (Python's `sys.stdout` and descriptor 1 alike) goes to stderr."""
    sys.stdout.flush()
    events = os.fdopen(os.dup(1), "w", encoding="utf-8", closefd=True)
    os.dup2(2, 1)  # the bot's own prints join its log lines
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # as stderr: in order with the log lines
    return events


# The bot's log lines (stderr) name their session: a dispatcher's console interleaves every bot's
# lines, and without it two sessions' errors cannot be told apart.
LOG_FORMAT = ("<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
              "session {extra[session_id]} | <cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
              "<level>{message}</level>")


def tag_logs(session_id: str) -> None:
    """Every log line from now on names `session_id` (a reserve bot's, once it is assigned)."""
    from loguru import logger

    logger.configure(extra={"session_id": session_id})
