"""A hostile review of how the edge ends its Kamailio front when it dies (sipedge/front_watch.py,
sipedge/front_leftover.py, docs/sip.md#supervision): each test is a case the change got wrong, marked strict-xfail
until it is fixed. The fronts here are stand-ins with Kamailio's command line (`exec -a`, as the leftover check
reads only /proc's cmdline and start time), or the real edge where the case needs one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sipedge.front_leftover import (
    END_SECONDS,
    FrontRecord,
    claim_record,
    group_processes,
    record_file,
    start_time,
    stat_fields,
)
from sipedge.supervisor import KAMAILIO
from tests.sip.conftest import run_edge
from tests.sip.test_front_leftover import _ended, record_path
from tests.support.front_records import end_leftover

REPO = Path(__file__).resolve().parents[2]
GONE_SECONDS = 30.0  # generous on a loaded host: what a process is given to exit once signalled
PAUSE = f'{sys.executable} -c "import time; time.sleep(300)"'


def _fake_front(config: Path) -> subprocess.Popen[bytes]:
    """A process in a session of its own whose command line is `KAMAILIO ... -f config`, as a Kamailio's is."""
    process = subprocess.Popen(["bash", "-c", f"exec -a {KAMAILIO} {PAUSE} -f {config}"], start_new_session=True)
    deadline = time.monotonic() + GONE_SECONDS
    while not Path(f"/proc/{process.pid}/cmdline").read_bytes().startswith(KAMAILIO.encode()):
        assert time.monotonic() < deadline, "the stand-in never took Kamailio's command line"
        time.sleep(0.01)
    return process


def _running(pid: int) -> bool:
    """Whether `pid` exists and is no zombie."""
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_watcher_spares_a_group_whose_id_is_now_another_programs() -> None:
    victim = subprocess.Popen(["bash", "-c", PAUSE], start_new_session=True)  # took the last front's id
    with _ended(victim.pid):
        watcher = subprocess.Popen([sys.executable, "-m", "sipedge.front_watch", KAMAILIO], stdin=subprocess.PIPE,
                                   stderr=subprocess.PIPE, cwd=REPO)
        # A record of the front as the edge sends it, the victim's own start time: only its command line tells it apart.
        told = json.dumps({"group": victim.pid, "started": start_time(victim.pid), "config": "/x/kamailio.cfg"})
        _, stderr = watcher.communicate(f"{told}\n".encode(), timeout=GONE_SECONDS)  # then the edge is gone
        assert victim.poll() is None, stderr.decode(errors="replace")


# The edge's side as the supervisor has it: a FrontWatch told one front's group, then waiting to be killed.
EDGE = """
import sys, time
from pathlib import Path
from sipedge.front_leftover import FrontRecord
from sipedge.front_watch import FrontWatch
from sipedge.supervisor import KAMAILIO
watch = FrontWatch(KAMAILIO)
watch.tell(FrontRecord.of(int(sys.argv[1]), Path(sys.argv[2])))
print(watch._process.pid, flush=True)
time.sleep(300)
"""


def test_the_watcher_outlives_a_hangup_of_the_edges_process_group(tmp_path: Path) -> None:
    front = _fake_front(tmp_path / "kamailio.cfg")
    with _ended(front.pid):
        edge = subprocess.Popen([sys.executable, "-c", EDGE, str(front.pid), str(tmp_path / "kamailio.cfg")],
                                stdout=subprocess.PIPE, cwd=REPO,
                                start_new_session=True)  # its own group, as a terminal's job has
        with _ended(edge.pid):
            assert edge.stdout is not None
            watcher = int(edge.stdout.readline())
            os.killpg(edge.pid, signal.SIGHUP)
            edge.wait(GONE_SECONDS)
            assert _wait_gone(watcher, GONE_SECONDS + 2 * END_SECONDS)  # it ends the front, then exits
            assert not group_processes(front.pid), "the front outlived the edge and its watcher"


def _shared_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$RUNTIME_DIRECTORY (or the temporary folder) in which `sipedge-UID` is a link, planted by another user, to a
    folder everyone may write: the edge's own uid owns it when it is root and the folder is /tmp or /dev/shm."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    base = tmp_path / "base"
    base.mkdir()
    (base / f"sipedge-{os.geteuid()}").symlink_to(shared)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(base))
    return shared


def test_the_record_folder_is_no_link_to_a_folder_everyone_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _shared_runtime(tmp_path, monkeypatch)
    with pytest.raises(OSError):
        record_file("127.0.0.1", 5060)


def test_a_record_planted_in_a_shared_folder_ends_no_other_kamailio(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = _shared_runtime(tmp_path, monkeypatch)
    other = _fake_front(tmp_path / "etc-kamailio.cfg")  # say /etc/kamailio/kamailio.cfg's service
    with _ended(other.pid):
        planted = shared / "front-127.0.0.1-5060.json"
        # What the attacker reads from /proc (the edge itself refuses such a folder).
        planted.write_text(json.dumps({"group": other.pid, "started": start_time(other.pid),
                                       "config": str(tmp_path / "etc-kamailio.cfg")}))
        with contextlib.suppress(OSError):  # refusing the folder is the fix
            end_leftover(record_path("127.0.0.1", 5060), KAMAILIO)
        assert other.poll() is None


def test_the_record_is_not_written_through_a_planted_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = _shared_runtime(tmp_path, monkeypatch)
    target = tmp_path / "victim"  # say /etc/shadow
    target.write_text("root:x:keep me\n")
    (shared / "front-127.0.0.1-5060.json").symlink_to(target)
    with contextlib.suppress(OSError):  # refusing the folder, or the link, is the fix
        claim_record(shared / "front-127.0.0.1-5060.json", KAMAILIO).write(
            FrontRecord(os.getpid(), start_time(os.getpid()), str(tmp_path / "kamailio.cfg")))
    assert target.read_text() == "root:x:keep me\n"


def test_a_second_edge_on_the_port_leaves_a_running_edges_front_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    env = {"RUNTIME_DIRECTORY": str(tmp_path), "TMPDIR": str(tmp_path)}
    with run_edge("http://127.0.0.1:9", tmp_path, env=env, workers=2) as edge:
        record = record_path("127.0.0.1", edge.sip_port)
        assert record.exists()
        group = int(json.loads(record.read_text())["group"])
        assert group_processes(group)  # the running edge's own front
        # What the second edge's start does first (sipedge/supervisor.py's run), before it would fail to bind.
        with contextlib.suppress(OSError):  # refusing to start next to a running edge is a fix too
            end_leftover(record, KAMAILIO)
        assert group_processes(group), f"a running edge's front (group {group}) was ended"
        assert edge.process.poll() is None


def test_a_folder_another_user_made_under_the_name_does_not_stop_the_edge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a folder owned by another user")
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # /tmp, sticky and writable by everyone
    squatted = tmp_path / f"sipedge-{os.geteuid()}"
    squatted.mkdir()
    os.chown(squatted, 65534, 65534)  # nobody's, made before the edge's first start
    path = record_path("127.0.0.1", 5060)
    assert squatted not in path.parents


# An edge whose watcher is killed on its own (the OOM killer's pick, an operator's kill), then whose Kamailio is
# started again (the supervisor's crash restart), then which is killed outright.
EDGE_AFTER_WATCHER = """
import sys, time
from pathlib import Path
from sipedge.front_leftover import FrontRecord
from sipedge.front_watch import FrontWatch
from sipedge.supervisor import KAMAILIO
watch = FrontWatch(KAMAILIO)
print(watch._process.pid, flush=True)
sys.stdin.readline()  # the test has killed the watcher
watch.tell(FrontRecord.of(int(sys.argv[1]), Path(sys.argv[2])))  # Kamailio started again
print("told", flush=True)
time.sleep(300)
"""


def test_a_watcher_killed_on_its_own_is_replaced(tmp_path: Path) -> None:
    front = _fake_front(tmp_path / "kamailio.cfg")
    with _ended(front.pid):
        edge = subprocess.Popen([sys.executable, "-c", EDGE_AFTER_WATCHER, str(front.pid),
                                 str(tmp_path / "kamailio.cfg")], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, start_new_session=True)
        with _ended(edge.pid):
            assert edge.stdout is not None and edge.stdin is not None
            watcher = int(edge.stdout.readline())
            os.kill(watcher, signal.SIGKILL)
            assert _wait_gone(watcher, GONE_SECONDS)
            edge.stdin.write(b"go\n")
            edge.stdin.flush()
            assert edge.stdout.readline() == b"told\n"
            edge.kill()
            edge.wait(GONE_SECONDS)
            deadline = time.monotonic() + GONE_SECONDS + 2 * END_SECONDS
            while group_processes(front.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not group_processes(front.pid), "the front outlived an edge whose watcher had died"
