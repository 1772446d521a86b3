"""The edge's record of its Kamailio front and its watcher, past the hostile review's cases
(tests/sip/test_review_front_leftover.py): a second edge on a running one's port refuses to start naming it, a
hang-up stops the edge cleanly, the record folder is the edge's alone, and neither the watcher nor the leftover
check signals a group that is no longer the front."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sipedge import front_leftover
from sipedge.front_leftover import end_group, group_processes, record_file
from sipedge.supervisor import KAMAILIO
from tests.sip.conftest import run_edge
from tests.sip.test_front_leftover import _ended, record_path
from tests.sip.test_review_front_leftover import GONE_SECONDS, REPO, _fake_front, _running, _wait_gone

EDGE_SECONDS = 120.0  # an edge's start and stop, with Kamailio and two workers, on a loaded host


def test_a_second_edge_on_a_running_edges_port_refuses_to_start_naming_it(tmp_path: Path) -> None:
    env = {"RUNTIME_DIRECTORY": str(tmp_path), "TMPDIR": str(tmp_path)}
    with run_edge("http://127.0.0.1:9", tmp_path, env=env, workers=2) as edge:
        second = subprocess.run([sys.executable, "-m", "sipedge"], capture_output=True, timeout=EDGE_SECONDS,
                                env={**os.environ, **env, "SIP_EDGE_CONFIG": str(tmp_path / "edge.toml")})
        errors = second.stderr.decode(errors="replace")
        assert second.returncode != 0
        assert f"another edge (pid {edge.process.pid}) runs on this SIP address and port" in errors, errors
        assert "Traceback" not in errors
        assert edge.process.poll() is None


def test_a_hangup_stops_the_edge_as_sigterm_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))  # where this test reads the edge's record
    env = {"RUNTIME_DIRECTORY": str(tmp_path), "TMPDIR": str(tmp_path)}
    with run_edge("http://127.0.0.1:9", tmp_path, env=env, workers=2) as edge:
        record = record_path("127.0.0.1", edge.sip_port)
        group = int(json.loads(record.read_text())["group"])
        edge.process.send_signal(signal.SIGHUP)
        assert edge.process.wait(EDGE_SECONDS) == 0, edge.log()
        assert "stopping Kamailio and 2 workers" in edge.log()
        assert not group_processes(group)
        assert not record.exists()


def test_the_record_folder_must_be_the_edges_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    folder = tmp_path / f"sipedge-{os.geteuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # readable by everyone: a mode of its own, not 700
    with pytest.raises(OSError, match="not 700"):
        record_file("127.0.0.1", 5060)


def test_a_squatted_temporary_folder_turns_the_check_off_without_stopping_the_edge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A non-root edge without a runtime folder: another user made `sipedge-UID` in the temporary folder first
    (here: the folder is this test's, the edge's uid another)."""
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read $TMPDIR again
    edge_uid = 4242 if os.geteuid() != 4242 else 4243
    monkeypatch.setattr(os, "geteuid", lambda: edge_uid)
    (tmp_path / f"sipedge-{edge_uid}").mkdir(mode=0o700)  # the real uid's: another user's to the edge
    with caplog.at_level(logging.WARNING, "sipedge"):
        assert record_file("127.0.0.1", 5060) is None
    assert "the check for a Kamailio front left by a killed edge is off" in caplog.text


def test_the_record_file_is_the_edges_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    path = record_path("127.0.0.1", 5060)
    claim = front_leftover.claim_record(path, KAMAILIO)
    try:
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        claim.close()
    assert not path.exists()


# A group that says which signals reach it, in the order it gets them: a signal sent before SIGWINCH is pending
# by the time SIGWINCH is, and the kernel (and Python's handlers) take the lower number first.
TELLING = """
import signal, sys, time
for signum in (signal.SIGTERM, signal.SIGWINCH):
    signal.signal(signum, lambda got, _: print(signal.Signals(got).name, flush=True))
print("ready", flush=True)
time.sleep(300)
"""


def test_end_group_signals_no_group_that_is_no_longer_the_front() -> None:
    group = subprocess.Popen([sys.executable, "-c", TELLING], stdout=subprocess.PIPE, start_new_session=True)
    with _ended(group.pid):
        assert group.stdout is not None and group.stdout.readline() == b"ready\n"
        end_group(group.pid, lambda: False)  # its id now another program's, as the check says
        os.killpg(group.pid, signal.SIGWINCH)
        assert group.stdout.readline() == b"SIGWINCH\n"


def test_a_watcher_told_to_forget_ends_nothing(tmp_path: Path) -> None:
    """The edge ended its front itself, and a front of the same command line took its id: the watcher leaves it."""
    config = tmp_path / "kamailio.cfg"
    front = _fake_front(config)
    with _ended(front.pid):
        edge = f"""
import sys
from pathlib import Path
from sipedge.front_leftover import FrontRecord
from sipedge.front_watch import FrontWatch
watch = FrontWatch({KAMAILIO!r})
watch.tell(FrontRecord.of({front.pid}, Path({str(config)!r})))
watch.forget()
print(watch._process.pid, flush=True)
"""
        told = subprocess.run([sys.executable, "-c", edge], capture_output=True, cwd=REPO, timeout=GONE_SECONDS)
        watcher = int(told.stdout)
        assert _wait_gone(watcher, GONE_SECONDS), "the watcher did not exit at the pipe's end"
        assert front.poll() is None and _running(front.pid)

