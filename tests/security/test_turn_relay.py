"""The managed TURN relay as the stack configures it: it does not announce its version.

The attack: any STUN request, no credential needed, was answered with `SOFTWARE: Coturn-4.6.1
'Gorst'`, which tells a scanner which advisories apply.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config.turn import TurnSettings
from stacks.shared.turn_server import coturn_config

pytestmark = [
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn (`turnserver`) is not installed"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare for a private network namespace"),
]

# A STUN Binding request (RFC 8489), then the attribute types of the answer, printed one a line.
PROBE = """
import os, socket, struct
request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
for _ in range(50):
    try:
        s.sendto(request, ("127.0.0.1", 3478)); answer = s.recv(2048); break
    except OSError:
        import time; time.sleep(0.1)
at = 20
while at + 4 <= len(answer):
    kind, length = struct.unpack("!HH", answer[at:at + 4]); print(hex(kind)); at += 4 + (length + 3) // 4 * 4
"""


def test_the_relay_answers_without_naming_its_software(tmp_path: Path) -> None:
    config = coturn_config(TurnSettings(mode="managed", shared_secret=None))  # type: ignore[arg-type]
    config = config.replace("syslog\n", f"log-file={tmp_path}/turn.log\n")
    config += "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nstatic-auth-secret=0123456789abcdef0123\n"
    (tmp_path / "turnserver.conf").write_text(config)
    (tmp_path / "probe.py").write_text(PROBE)
    run = subprocess.run(
        ["unshare", "--net", "--map-root-user", "sh", "-c",
         f"ip link set lo up && (turnserver -c {tmp_path}/turnserver.conf --pidfile {tmp_path}/pid &) "
         f"&& {sys.executable} {tmp_path}/probe.py; kill $(cat {tmp_path}/pid) 2>/dev/null; true"],
        capture_output=True, text=True, timeout=60)
    attributes = run.stdout.split()
    assert "0x20" in attributes or "0x8020" in attributes, run.stdout + run.stderr  # control: XOR-MAPPED-ADDRESS
    assert "0x8022" not in attributes, "the relay names its software and version"
