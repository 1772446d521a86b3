"""Debian's baresip (1.0) as a caller a person would use, driven over its control socket.

`run_baresip` writes the test's own config folder from tests/sip/baresip/ (loopback only, no sound
card: the caller's voice is a WAV played by the `aufile` source, what it hears is dumped to a WAV by
the `sndfile` filter), starts `baresip -f DIR`, and yields a `Baresip` that places calls and reads
baresip's events over `ctrl_tcp` (JSON in netstrings: `len:{...},`). On exit baresip is told to
`quit` and waited for; only one that does not quit is terminated."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template
from typing import Any

import pytest

from tests.support.ports import free_port_pair
from tests.support.processes import terminate

TEMPLATE = Path(__file__).parent / "baresip"
RTP_PORTS = 10
READY_SECONDS = 30.0
QUIT_SECONDS = 10.0


class Baresip:
    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket, folder: Path, log_path: Path) -> None:
        self.process = process
        self.folder = folder
        self.log_path = log_path
        self._control = control
        self._buffer = b""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def command(self, command: str, params: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Runs one of baresip's long commands; its answer (`ok`, `data`)."""
        self.send(command, params)
        return self.next_message(lambda m: m.get("response") is True and m.get("token") == command, timeout)

    def send(self, command: str, params: str = "") -> None:
        message = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._control.sendall(b"%d:%s," % (len(message), message))

    def wait_event(self, *kinds: str, timeout: float) -> dict[str, Any]:
        """The next event of one of `kinds` (baresip's UA event names: CALL_ESTABLISHED, CALL_CLOSED…)."""
        return self.next_message(lambda m: m.get("event") is True and m.get("type") in kinds, timeout)

    def next_message(self, wanted: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while (message := self._take()) is not None:
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"baresip sent nothing wanted within {timeout:g} s\n{self.log()}")
            self._control.settimeout(left)
            try:
                chunk = self._control.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"baresip closed its control socket\n{self.log()}")
            self._buffer += chunk

    def _take(self) -> dict[str, Any] | None:
        """The first whole netstring in the buffer, decoded, or None."""
        head, colon, rest = self._buffer.partition(b":")
        if not colon:
            return None
        size = int(head)
        if len(rest) < size + 1:
            return None
        self._buffer = rest[size + 1 :]
        decoded: dict[str, Any] = json.loads(rest[:size])
        return decoded

    def recordings(self, kind: str = "dec") -> list[Path]:
        """The sndfile filter's WAVs: `dec` what baresip heard (decoded), `enc` what it sent."""
        return sorted(self.folder.glob(f"dump-*-{kind}.wav"))


@contextmanager
def run_baresip(folder: Path, caller_wav: Path, more_config: str = "", account_params: str = "",
                sip_port: int | None = None) -> Iterator[Baresip]:
    """`more_config`: lines added to baresip's config; `account_params`: `;name=value` added to its account;
    `sip_port`: its SIP port (UDP and TCP; TLS on the next one), a free one when unset."""
    if shutil.which("baresip") is None:
        pytest.skip("baresip is not installed (Debian's baresip-core: .ci/run installs it)")
    # Ports below the ephemeral range: baresip binds its SIP port for UDP and TCP and the next for TLS,
    # and a kernel-chosen UDP port may be handed to another test's TCP bind or connection meanwhile.
    control_port = free_port_pair()
    first_rtp = free_port_pair(RTP_PORTS)
    values = {"sip_port": str(sip_port or free_port_pair(2)),
              "rtp_ports": f"{first_rtp}-{first_rtp + RTP_PORTS - 1}",
              "caller_wav": str(caller_wav), "recordings": str(folder), "control_port": str(control_port),
              "more_config": more_config, "account_params": account_params}
    for name in ("config", "accounts"):
        (folder / name).write_text(Template((TEMPLATE / name).read_text()).substitute(values))
    log_path = folder / "baresip.log"
    with open(log_path, "wb") as log:
        # -4: IPv4 only; -f: this folder, never ~/.baresip; -t: a backstop should the test's quit never come.
        process = subprocess.Popen(["baresip", "-4", "-f", str(folder), "-t", "300"], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=log)
    try:
        control = _connect(control_port, process, log_path)
        with control:
            agent = Baresip(process, control, folder, log_path)
            try:
                yield agent
            finally:
                if process.poll() is None:
                    agent.send("quit")  # not answered once baresip has gone: its exit is the answer
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(QUIT_SECONDS)
    finally:
        if process.poll() is None:
            terminate(process)


def _connect(port: int, process: subprocess.Popen[bytes], log_path: Path) -> socket.socket:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baresip did not come up:\n{log_path.read_text(errors='replace')}") from None
            time.sleep(0.1)
