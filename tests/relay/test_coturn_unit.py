"""The managed relay's coturn starts on the TLS port under Debian's own systemd unit.

Debian's `coturn.service` runs `User=turnserver`, `Group=turnserver` with no capabilities; coturn then
cannot bind 443 and retries the bind forever. The test reads the installed unit file, applies the
drop-ins the relay's boot script writes (stacks/shared/turn_server.py), and starts Debian's coturn as
that user with exactly the capabilities the merged unit grants (`setpriv`, in a network namespace
of its own), with the configuration the boot script renders, TLS on 443 included.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from stacks.config.turn import TurnSettings
from stacks.shared.turn_server import TLS_DIR, boot_script

UNIT = Path("/lib/systemd/system/coturn.service")
STARTED = "Total General servers"  # coturn logs it once every listener is bound
REFUSED = re.compile(r"Trying to bind fd \d+ to <127\.0\.0\.1:443>: errno=13")
START_DEADLINE = 60.0  # waits for one of the two events above, whichever comes first


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (setpriv to Debian's turnserver user, a network namespace)"
    for tool in ("turnserver", "setpriv", "unshare", "openssl", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install coturn util-linux openssl iproute2)"
    return None if UNIT.exists() else f"{UNIT} (Debian's coturn package) is not installed"


pytestmark = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


def service_section(text: str) -> dict[str, list[str]]:
    """The [Service] settings of a unit or drop-in; a key given twice accumulates (as systemd does
    for capability sets), an empty assignment resets it."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = [] if not value else found.get(key, []) + value.split()
    return found


def effective_service(drop_ins: list[str]) -> dict[str, list[str]]:
    merged = service_section(UNIT.read_text())
    for drop_in in drop_ins:
        for key, values in service_section(drop_in).items():
            merged[key] = [] if not values else merged.get(key, []) + values
    return merged


def heredoc(script: str, marker: str) -> list[str]:
    return re.findall(rf"<<'{marker}'\n(.*?)^{marker}$", script, re.DOTALL | re.MULTILINE)


def tls_relay_script() -> str:
    turn = TurnSettings(mode="managed", shared_secret=None, domain="turn.example.com",  # type: ignore[arg-type]
                        tls_certificate="pem", tls_private_key="pem")  # type: ignore[arg-type]
    return boot_script(turn, public_ip="203.0.113.10", private_ip_command="echo 127.0.0.1",
                       fetch_function="fetch() { :; }", secrets=["SECRET", "CERT", "KEY"])


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder the turnserver user can read (pytest's own tmp folders are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="vf-coturn-unit-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def prepare(workdir: Path, script: str) -> Path:
    """The boot script's config with this folder's TLS files and loopback addresses; the files
    owned root:turnserver 0640, as the boot script leaves them."""
    (config,) = heredoc(script, "COTURN")
    config = config.replace(TLS_DIR, str(workdir)).replace("syslog\n", "log-file=stdout\n")
    config += "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nstatic-auth-secret=0123456789abcdef0123\n"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=turn.example.com", "-keyout", str(workdir / "key.pem"),
                    "-out", str(workdir / "cert.pem")], check=True, capture_output=True, timeout=60)
    path = workdir / "turnserver.conf"
    path.write_text(config)
    for file in (path, workdir / "key.pem", workdir / "cert.pem"):
        shutil.chown(file, "root", "turnserver")
        file.chmod(0o640)
    return path


def setpriv(service: dict[str, list[str]]) -> list[str]:
    """The unit's user, group and capabilities as setpriv arguments (no ambient capability: none)."""
    caps = [c.lower().removeprefix("cap_") for c in service.get("AmbientCapabilities", [])]
    args = ["setpriv", f"--reuid={service['User'][0]}", f"--regid={service['Group'][0]}", "--init-groups"]
    if caps:
        wanted = ",".join(f"+{c}" for c in caps)
        args += [f"--inh-caps=-all,{wanted}", f"--ambient-caps=-all,{wanted}"]
        bounding = [c.lower().removeprefix("cap_") for c in service.get("CapabilityBoundingSet", [])]
        if bounding:
            args.append("--bounding-set=-all," + ",".join(f"+{c}" for c in bounding))
    else:
        args.append("--inh-caps=-all")
    return args


def start(service: dict[str, list[str]], config: Path) -> tuple[bool, str]:
    """Start coturn as the unit would (ExecStart's flags) and wait for it to bind or to be refused."""
    exec_start = service["ExecStart"]
    assert exec_start[0] == "/usr/bin/turnserver" and exec_start[1:3] == ["-c", "/etc/turnserver.conf"]
    command = [*setpriv(service), exec_start[0], "-c", str(config), *exec_start[3:]]
    process = subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        return first_event(process, START_DEADLINE)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def first_event(process: subprocess.Popen[str], deadline_seconds: float) -> tuple[bool, str]:
    """(started?, the log so far) at the first STARTED or REFUSED line.

    A thread reads the lines: selecting on the pipe and then calling `readline()` loses lines, because
    `readline()` buffers the whole chunk it read and `select` no longer sees the rest. Under load
    coturn's start-up lines arrive in one chunk, and the line sought sat in that buffer until the
    deadline."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, args=(process.stdout,), daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + deadline_seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if STARTED in line:
            return True, "".join(seen)
        if REFUSED.search(line):
            return False, "".join(seen)
    raise AssertionError("coturn neither started nor was refused:\n" + "".join(seen[-40:]))


def test_a_started_line_that_arrives_in_one_chunk_with_others_is_seen() -> None:
    """The reader itself: several lines written at once, then silence (as coturn does once bound)."""
    process = subprocess.Popen(["sh", "-c", f'printf "one\\ntwo\\n{STARTED}: 1\\n"; exec sleep 30'],
                               stdout=subprocess.PIPE, text=True)
    try:
        started, log = first_event(process, 5.0)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert started and log.startswith("one\n"), log


def test_debians_unit_alone_cannot_bind_the_tls_port(workdir: Path) -> None:
    """The failure the relay had: Debian's unit, no drop-in, the TLS config -> errno 13 on 443."""
    service = effective_service([])
    assert service["User"] == ["turnserver"] and not service.get("AmbientCapabilities")
    started, log = start(service, prepare(workdir, tls_relay_script()))
    assert not started and "127.0.0.1:443" in log, log[-3000:]


def test_the_relays_boot_script_lets_debians_unit_start_coturn_on_443(workdir: Path) -> None:
    script = tls_relay_script()
    drop_ins = heredoc(script, "UNIT")
    assert drop_ins, "the boot script writes no systemd drop-in for coturn"
    service = effective_service(drop_ins)
    assert service["User"] == ["turnserver"]  # still Debian's unprivileged user
    assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]  # that one capability, nothing more
    started, log = start(service, prepare(workdir, script))
    assert started and not REFUSED.search(log), log[-3000:]
    assert script.index("systemctl daemon-reload") < script.index("systemctl restart coturn")
