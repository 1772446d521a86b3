"""Long-running processes inside a namespace whose stdout is JSON lines (the bot, the relay client)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.processes import terminate

REPO = Path(__file__).resolve().parents[2]


class JsonLinesProcess:
    """stdout lines arrive on a queue (a reader thread), stderr goes to a file; reads have deadlines."""

    def __init__(self, process: subprocess.Popen[str], stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                self.seen.append(parsed)
                self.lines.put(parsed)

    def next(self, key: str, value: str | None = None, *, timeout: float) -> dict[str, Any]:
        """The next line that has `key` (equal to `value` if given)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if key in line and (value is None or line[key] == value):
                return line
        raise AssertionError(
            f"no line with {key}={value} within {timeout}s (exit {self.process.poll()}); "
            f"stderr tail:\n{self.stderr_tail()}"
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def stderr_tail(self, characters: int = 4000) -> str:
        return self.stderr_path.read_text(errors="replace")[-characters:]


@contextmanager
def run_in_namespace(
    namespace: str, args: list[str], *, env: Mapping[str, str], stderr_path: Path
) -> Iterator[JsonLinesProcess]:
    """`ip netns exec <ns> <python> <args>`; terminated (then killed) on exit, whatever happened."""
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=dict(env),
            cwd=REPO,
        )
    try:
        yield JsonLinesProcess(process, stderr_path)
    finally:
        terminate(process)
