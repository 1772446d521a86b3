"""Run bench/fast_fakes.py in a process of its own (optionally pinned to a CPU) and talk to it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

from bench.pinning import pinned


class FakesProcess:
    def __init__(self, *, latency: float = 0.05, cpu: int | None = None) -> None:
        self.latency = latency
        self.cpu = cpu
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakesProcess:
        command = [sys.executable, "-m", "bench.fast_fakes", "--port", "0", "--latency", str(self.latency)]
        self._process = subprocess.Popen(pinned(command, self.cpu), stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the fakes did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """`calls` per route, `connections` opened, `cpu` seconds the fakes' process has used."""
        result: dict[str, Any] = self._call("GET", "/_stats")
        return result

    def reset(self, latency: float | None = None) -> None:
        self._call("POST", f"/_reset?latency={self.latency if latency is None else latency}")
