"""An edge killed outright (SIGKILL: the OOM killer, `kill -9`) leaves no Kamailio behind to hold its SIP port
(docs/sip.md#supervision): Kamailio's main process gets SIGTERM from the kernel as the edge dies and ends its
children; and a front left by an edge killed before that is ended by the next edge's start, never a process
that merely reuses its recorded id."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge import front_leftover
from sipedge.config import load
from sipedge.front_config import write_front
from sipedge.front_leftover import END_SECONDS, end_group, group_processes, record_file
from sipedge.supervisor import KAMAILIO, _answers_options
from sipedge.worker_place import new_token
from tests.sip.conftest import run_edge, started_edge
from tests.support.front_records import end_leftover, write_record
from tests.support.ports import free_port, free_port_pair

GONE_SECONDS = 30.0  # Kamailio's main process waits for its children's exit: generous on a loaded host
READY_SECONDS = 30.0
EDGE = """dispatcher_url = "http://127.0.0.1:9"
sip_address = "127.0.0.1"
sip_port = {port}
rtp_port = {rtp}
rtp_port_count = 40
workers = 2
worker_sip_port = {workers}
[[trunk]]
name = "loopback"
sources = ["127.0.0.1/32"]
numbers = {{ "+14155550199" = "" }}
"""


def _needs_kamailio() -> None:
    if not os.access(KAMAILIO, os.X_OK):
        pytest.skip(f"Kamailio is not installed at {KAMAILIO} (Debian's kamailio: .ci/run installs it)")


def _gone(group: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while group_processes(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kamailio_of(edge_pid: int) -> int:
    """The edge's Kamailio's main process (its group's id), found as the edge's child running Kamailio."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            if parent == edge_pid and (entry / "cmdline").read_bytes().startswith(KAMAILIO.encode()):
                return int(entry.name)
    raise AssertionError(f"no Kamailio among process {edge_pid}'s children")


def record_path(sip_address: str, sip_port: int) -> Path:
    """The edge's record of `sip_address`:`sip_port`, in a folder the test made the edge's own."""
    path = record_file(sip_address, sip_port)
    assert path is not None, "the record folder turned the leftover check off"
    return path


@contextlib.contextmanager
def _ended(group: int) -> Iterator[None]:
    """Whatever the test leaves of `group` is killed (the test's own processes, by their group's id)."""
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def test_kamailio_ends_with_an_edge_killed_outright(tmp_path: Path) -> None:
    _needs_kamailio()
    env = {"RUNTIME_DIRECTORY": str(tmp_path), "TMPDIR": str(tmp_path)}
    with run_edge("http://127.0.0.1:9", tmp_path, env=env, workers=2) as edge:
        group = _kamailio_of(edge.process.pid)
        with _ended(group):
            assert len(group_processes(group)) > 1  # its main process and its children
            edge.process.send_signal(signal.SIGKILL)
            edge.process.wait()
            assert _gone(group, GONE_SECONDS), f"Kamailio's processes outlived the edge: {group_processes(group)}"


# Starts Kamailio as the supervisor does (sipedge/supervisor.py's Child, with its parent-death signal), without
# dropping to another user: that signal alone, no watcher. Prints Kamailio's id, then waits to be killed.
PARENT = """
import asyncio, sys
from sipedge.supervisor import FRONT_PARENT_DEATH, Child

async def main() -> None:
    async def ready(child: Child) -> None:
        print(child.process.pid, flush=True)
    await Child("kamailio", sys.argv[1:], {"PATH": "/usr/bin:/bin"}, ready, own_group=True,
                parent_death=FRONT_PARENT_DEATH).start()
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_kamailio_gets_sigterm_from_the_kernel_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    """As the edge runs it unprivileged (so the kernel keeps the signal through Kamailio's start): its main
    process ends its children on SIGTERM, where SIGKILL would leave them bound to the port."""
    _needs_kamailio()
    port = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(port=port, rtp=free_port_pair(40), workers=free_port_pair(2)))
    config = load({"SIP_EDGE_CONFIG": str(path)})
    files = write_front(config, tmp_path, 3, new_token())
    argv = [KAMAILIO, "-f", str(files.config), "-DD", "-E", "-Y", str(tmp_path), "-w", str(tmp_path)]
    with (tmp_path / "kamailio.log").open("wb") as log:
        parent = subprocess.Popen([sys.executable, "-c", PARENT, *argv], stdout=subprocess.PIPE, stderr=log,
                                  cwd=Path(__file__).resolve().parents[2])
    try:
        assert parent.stdout is not None
        group = int(parent.stdout.readline())
        with _ended(group):
            deadline = time.monotonic() + READY_SECONDS
            while not _answers_options(config.sip_address, port):
                assert time.monotonic() < deadline, (tmp_path / "kamailio.log").read_text()
            assert len(group_processes(group)) > 1  # its main process and its children
            parent.kill()
            parent.wait()
            assert _gone(group, GONE_SECONDS), f"Kamailio's processes outlived their parent: {group_processes(group)}"
    finally:
        parent.kill()
        parent.wait()


def test_the_next_edge_ends_a_front_left_running_then_binds_its_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_kamailio()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))  # where this test writes the record the edge reads
    port = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(port=port, rtp=free_port_pair(40), workers=free_port_pair(2)))
    config = load({"SIP_EDGE_CONFIG": str(path)})
    left = tmp_path / "left"  # the earlier edge's front, as a SIGKILLed edge whose Kamailio outlived it left it
    left.mkdir()
    files = write_front(config, left, 3, new_token())
    with (tmp_path / "left.log").open("wb") as log:
        leftover = subprocess.Popen([KAMAILIO, "-f", str(files.config), "-DD", "-E", "-Y", str(left), "-w", str(left)],
                                    stdout=log, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"},
                                    start_new_session=True)
    with _ended(leftover.pid):
        deadline = time.monotonic() + READY_SECONDS
        while not _answers_options(config.sip_address, port):
            assert leftover.poll() is None and time.monotonic() < deadline, (tmp_path / "left.log").read_text()
        write_record(record_path(config.sip_address, port), leftover.pid, files.config)
        env = {"RUNTIME_DIRECTORY": str(tmp_path), "TMPDIR": str(tmp_path)}
        with started_edge(path, port, tmp_path, env) as edge:  # ready: its own Kamailio answers on the port
            ended = leftover.wait(GONE_SECONDS)
            # SIGTERM, on which Kamailio exits 0; or, when its main process still waited on a child past the
            # bound (a loaded host), the SIGKILL the edge then sends the group and says so.
            said = f"{edge.log()}\nthe leftover's log:\n{(tmp_path / 'left.log').read_text()[-4000:]}"
            assert ended == 0 or (ended == -signal.SIGKILL and "after SIGTERM" in edge.log()), said
            assert _gone(leftover.pid, GONE_SECONDS)
            assert "a Kamailio front left by an earlier edge still runs" in edge.log()
            assert _kamailio_of(edge.process.pid) != leftover.pid


def test_a_recorded_id_now_another_programs_is_not_signalled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    record = record_path("127.0.0.1", 5060)
    config = tmp_path / "kamailio.cfg"
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)  # the pid reused: not Kamailio
    with _ended(sleeper.pid):
        write_record(record, sleeper.pid, config)  # its own start time: only its command line tells
        assert end_leftover(record, KAMAILIO) is None
        assert sleeper.poll() is None
        assert not record.exists()  # read once: the next start does not look again


def test_a_kamailio_started_after_the_recorded_one_under_its_id_is_not_signalled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same program and config, another start time: a process that took the id after the recorded one ended."""
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    record = record_path("127.0.0.1", 5060)
    config = tmp_path / "kamailio.cfg"
    # `exec -a` names it kamailio on `config`: the same command line as the recorded front's.
    pause = f'{sys.executable} -c "import time; time.sleep(60)"'
    sleeper = subprocess.Popen(["bash", "-c", f"exec -a {KAMAILIO} {pause} -f {config}"], start_new_session=True)
    with _ended(sleeper.pid):
        deadline = time.monotonic() + END_SECONDS
        while not Path(f"/proc/{sleeper.pid}/cmdline").read_bytes().startswith(KAMAILIO.encode()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        write_record(record, sleeper.pid, config)
        text = record.read_text().replace('"started": ', '"started": 1')  # another start time
        record.write_text(text)
        assert end_leftover(record, KAMAILIO) is None
        assert sleeper.poll() is None


IGNORES_SIGTERM = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
                   "time.sleep(60)")


def test_a_group_still_running_after_sigterm_gets_sigkill_and_the_edge_says_so(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A front whose main process is still waiting on a child when the bound passes: its whole group is killed, so
    no process is left holding the SIP port, and the log names the group and its processes."""
    monkeypatch.setattr(front_leftover, "END_SECONDS", 0.2)
    stubborn = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE,
                                start_new_session=True)
    with _ended(stubborn.pid):
        assert stubborn.stdout is not None
        stubborn.stdout.readline()  # its SIGTERM is ignored from here on
        end_group(stubborn.pid, lambda: group_processes(stubborn.pid))
        assert stubborn.wait(GONE_SECONDS) == -signal.SIGKILL
    assert f"group {stubborn.pid} still runs 0.2 s after SIGTERM (pid {stubborn.pid}); sending SIGKILL" in caplog.text


def test_a_group_a_sigkill_leaves_is_named_with_its_processes_and_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a process in uninterruptible sleep outlives a SIGKILL, which a test cannot make: here a fake group whose
    processes never leave. Its signals go to a real group of the test's own (a sleeper), never to anyone else's."""
    monkeypatch.setattr(front_leftover, "END_SECONDS", 0.2)
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    with _ended(sleeper.pid), pytest.raises(OSError) as left:
        end_group(sleeper.pid, lambda: [sleeper.pid, 4242])
    said = str(left.value)
    assert f"group {sleeper.pid} did not end on SIGKILL: pid {sleeper.pid},4242 still run" in said, said
    assert f"ps -o pid,stat,wchan -p {sleeper.pid},4242" in said and "state D" in said, said
    assert "start the edge again" in said and "restart the host" in said, said
    assert sleeper.wait(END_SECONDS) == -signal.SIGTERM  # signalled as a front is: SIGTERM first
