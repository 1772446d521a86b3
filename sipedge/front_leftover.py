"""A Kamailio front left running by an edge that was killed outright (SIGKILL: the OOM killer, `kill -9`), found
and ended at the next start before it binds the SIP port (docs/sip.md#supervision). The supervisor records each
Kamailio it starts (its process group and the kernel's start time of its main process) in a file of this edge's
own; the next start ends that group only while it is still that Kamailio: each process in it is kamailio run on
the recorded kamailio.cfg, and its leader, if alive, has the recorded start time. A pid reused by anything else
is never signalled."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sipedge")

END_SECONDS = 5.0  # SIGTERM, then SIGKILL: Kamailio's main process ends its children on SIGTERM
GONE_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class FrontRecord:
    group: int  # the process group id: Kamailio's main process's id, as it runs in a session of its own
    started: int  # its start time, /proc/<pid>/stat field 22 (clock ticks since boot)
    config: str  # the kamailio.cfg it was started on


def record_file(sip_address: str, sip_port: int) -> Path:
    """This edge's record, one per SIP address and port (several edges on one host never end each other's
    front), in a folder of this user's own: systemd's $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR, else the
    temporary folder."""
    base = os.environ.get("RUNTIME_DIRECTORY") or os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"sipedge-{os.geteuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.geteuid():  # another user's folder: its records could name anyone's processes
        raise OSError(f"{folder} belongs to another user: remove it, or set RUNTIME_DIRECTORY to a folder of "
                      "the edge's own")
    return folder / f"front-{sip_address.replace(':', '_')}-{sip_port}.json"


def start_time(pid: int) -> int:
    """The kernel's start time of `pid` (/proc/<pid>/stat field 22). Raises OSError once it is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[19])  # fields 3.. follow the command's closing parenthesis


def write_record(path: Path, pid: int, config: Path) -> None:
    """Records the Kamailio just started as `pid` on `config` (its group is its own: start_new_session)."""
    record = FrontRecord(pid, start_time(pid), str(config))
    partial = path.with_suffix(".new")
    partial.write_text(json.dumps(record.__dict__))
    partial.replace(path)


def end_leftover(path: Path, kamailio: str) -> FrontRecord | None:
    """Ends the front `path` records if it still runs (SIGTERM, SIGKILL after END_SECONDS), waiting until its
    group is gone; the record it ended, or None. The record is removed either way."""
    try:
        record = FrontRecord(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:
        log.warning("sipedge: %s is no record of a Kamailio front (%s); removed", path, error)
        path.unlink(missing_ok=True)
        return None
    members = _members(record, kamailio)
    if members:
        log.warning("sipedge: a Kamailio front left by an earlier edge still runs (group %d, %d processes, on %s); "
                    "ending it before binding the SIP port", record.group, len(members), record.config)
        end_group(record.group, lambda: bool(_members(record, kamailio)))
    path.unlink(missing_ok=True)
    return record if members else None


def _members(record: FrontRecord, kamailio: str) -> list[int]:
    """The processes of `record`'s group, if every one is `kamailio` on its config and its leader (if alive) has
    its start time; else none: the group is no longer that Kamailio."""
    members = []
    for pid in group_processes(record.group):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if pid == record.group and start_time(pid) != record.started:
                return []  # its id is now another process's
        except OSError:
            continue  # exited meanwhile
        if not _runs(argv, kamailio, record.config):
            return []
        members.append(pid)
    return members


def group_processes(group: int) -> list[int]:
    """The ids of the processes in process group `group` that have not exited (zombies left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # field 3 on: its state, parent, process group...
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _runs(argv: list[bytes], kamailio: str, config: str) -> bool:
    """Whether `argv` (a /proc cmdline) is `kamailio -f config ...`."""
    words = [word.decode(errors="replace") for word in argv]
    return (len(words) > 2 and os.path.basename(words[0]) == os.path.basename(kamailio)
            and "-f" in words and words.index("-f") + 1 < len(words) and words[words.index("-f") + 1] == config)


def end_group(group: int, alive: Callable[[], bool]) -> None:
    """SIGTERM to `group`, SIGKILL after END_SECONDS, then waits (bounded) for it to be gone."""
    for signum, seconds in ((signal.SIGTERM, END_SECONDS), (signal.SIGKILL, END_SECONDS)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signum)
        deadline = time.monotonic() + seconds
        while alive() and time.monotonic() < deadline:
            time.sleep(GONE_POLL_SECONDS)
        if not alive():
            return
    raise OSError(f"the Kamailio front left by an earlier edge (group {group}) did not end on SIGKILL")
