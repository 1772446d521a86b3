"""A Kamailio front left running by an edge that was killed outright (SIGKILL: the OOM killer, `kill -9`), found
and ended at the next start before it binds the SIP port (docs/sip.md#supervision). The supervisor records each
Kamailio it starts (its process group and the kernel's start time of its main process) in a file of this edge's
own; the next start ends that group only while it is still that Kamailio: each process in it is kamailio run on
the recorded kamailio.cfg, and its leader, if alive, has the recorded start time. A pid reused by anything else
is never signalled. The edge holds its record locked for its whole life, so a front whose edge still runs is
never taken for a leftover: a second edge on the same address and port refuses to start instead."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("sipedge")

END_SECONDS = 5.0  # SIGTERM, then SIGKILL: Kamailio's main process ends its children on SIGTERM
GONE_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class FrontRecord:
    group: int  # the process group id: Kamailio's main process's id, as it runs in a session of its own
    started: int  # its start time, /proc/<pid>/stat field 22 (clock ticks since boot)
    config: str  # the kamailio.cfg it was started on

    @classmethod
    def of(cls, pid: int, config: Path) -> FrontRecord:
        """The Kamailio just started as `pid` on `config` (its group is its own: start_new_session)."""
        return cls(pid, start_time(pid), str(config))

    @classmethod
    def read(cls, content: object) -> FrontRecord | None:
        """The record a JSON object holds (its other keys ignored); None for anything else."""
        if not isinstance(content, dict):
            return None
        group, started, config = content.get("group"), content.get("started"), content.get("config")
        if isinstance(group, int) and isinstance(started, int) and isinstance(config, str):
            return cls(group, started, config)
        return None


class EdgeRunning(OSError):
    """Another edge, alive, holds the record of this address and port: its front is no leftover."""


ROOT_FOLDER = Path("/run/sipedge")  # a root edge's folder without systemd's or a login's runtime folder


def record_file(sip_address: str, sip_port: int) -> Path | None:
    """This edge's record, one per SIP address and port (several edges on one host never end each other's
    front), in a folder only this user may write: `sipedge-UID` under systemd's $RUNTIME_DIRECTORY or else
    $XDG_RUNTIME_DIR, else /run/sipedge for root, else `sipedge-UID` in the temporary folder. Raises OSError for a
    folder that is a link, another user's, or open to others; in the temporary folder, where any user may take
    the name first, that turns the check off (None) rather than let another user keep the edge from starting."""
    base = os.environ.get("RUNTIME_DIRECTORY") or os.environ.get("XDG_RUNTIME_DIR")
    name = f"front-{sip_address.replace(':', '_')}-{sip_port}.json"
    if base:
        return _own_folder(Path(base) / f"sipedge-{os.geteuid()}") / name
    if os.geteuid() == 0:
        return _own_folder(ROOT_FOLDER) / name
    try:
        return _own_folder(Path(tempfile.gettempdir()) / f"sipedge-{os.geteuid()}") / name
    except OSError as error:
        log.warning("sipedge: the check for a Kamailio front left by a killed edge is off: %s", error)
        return None


def _own_folder(folder: Path) -> Path:
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    _check_folder(os.lstat(folder), folder)
    return folder


def _check_folder(info: os.stat_result, folder: Path) -> None:
    """Whether `folder` (lstat's or fstat's `info`) is a folder of this user's alone: else its records could name
    anyone's processes, and a link planted in it could take the edge's writes elsewhere."""
    way = "remove it, or set RUNTIME_DIRECTORY to a folder of the edge's own"
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{folder} is not a folder (a link?): {way}")
    if info.st_uid != os.geteuid():
        raise OSError(f"{folder} belongs to uid {info.st_uid}, not the edge's {os.geteuid()}: {way}")
    if stat.S_IMODE(info.st_mode) != 0o700:
        raise OSError(f"{folder} has mode {stat.S_IMODE(info.st_mode):o}, not 700: {way}")


def _open_folder(folder: Path) -> int:
    """A descriptor of `folder`, checked as it is opened: files are then made relative to it, never via a path
    a link could redirect."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _check_folder(os.fstat(fd), folder)
    except OSError:
        os.close(fd)
        raise
    return fd


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields from the third on (its state, parent, process group…: field N is at N - 3), read
    after the command's closing parenthesis, since a command's name may hold spaces and parentheses. Raises
    OSError once it is gone."""
    stat_line = Path(f"/proc/{pid}/stat").read_text()
    return stat_line[stat_line.rindex(")") + 2:].split()


def start_time(pid: int) -> int:
    """The kernel's start time of `pid` (/proc/<pid>/stat field 22). Raises OSError once it is gone."""
    return int(stat_fields(pid)[19])


class RecordClaim:
    """This edge's record, held under an exclusive lock (flock) for the edge's whole life: the lock, released by
    the kernel however the edge ends, tells a live edge's front from a leftover."""

    def __init__(self, path: Path, fd: int, ended: FrontRecord | None) -> None:
        self.path, self._fd, self.ended = path, fd, ended  # `ended`: the leftover front it ended, if any
        self._write({"edge": os.getpid()})

    def write(self, record: FrontRecord) -> None:
        """Records the Kamailio just started."""
        self._write({"edge": os.getpid(), **asdict(record)})

    def _write(self, content: dict[str, object]) -> None:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(content).encode(), 0)

    def close(self) -> None:
        """After an orderly stop: the record is removed, then the lock let go."""
        self.path.unlink(missing_ok=True)
        os.close(self._fd)


def claim_record(path: Path, kamailio: str) -> RecordClaim:
    """Takes this edge's record at `path` (locked until `close`), first ending the front it names if that still
    runs (SIGTERM, SIGKILL after END_SECONDS). Raises EdgeRunning when a live edge holds it."""
    folder = _open_folder(path.parent)
    try:
        fd = _locked(folder, path)
    finally:
        os.close(folder)
    try:
        record = _parse(_read(fd), path)
        ended = None
        if record is not None and (members := live_members(record, kamailio)):
            log.warning("sipedge: a Kamailio front left by an earlier edge still runs (group %d, %d processes, on "
                        "%s); ending it before binding the SIP port", record.group, len(members), record.config)
            end_group(record.group, lambda: live_members(record, kamailio))
            ended = record
        return RecordClaim(path, fd, ended)
    except BaseException:
        os.close(fd)
        raise


def _locked(folder: int, path: Path) -> int:
    """`path`'s file (made 0600 if new; never through a link), locked; retried while the file locked is one an
    edge removed at its stop meanwhile."""
    for _ in range(3):
        fd = os.open(path.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            edge = (_read(fd) or {}).get("edge", "unknown")
            os.close(fd)
            raise EdgeRunning(f"another edge (pid {edge}) runs on this SIP address and port and holds {path}: stop "
                              "it first, or give this edge another sip_port") from None
        try:
            if os.stat(path.name, dir_fd=folder, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise OSError(f"{path} kept being removed while it was locked: is another edge starting and stopping?")


def _read(fd: int) -> dict[str, object] | None:
    """The record's content; None when it is no JSON object (a write cut short)."""
    with contextlib.suppress(ValueError):
        content = json.loads(os.pread(fd, 4096, 0) or b"{}")
        if isinstance(content, dict):
            return content
    return None


def _parse(content: dict[str, object] | None, path: Path) -> FrontRecord | None:
    """The front `content` records; None when it records none (an edge's record before its Kamailio started)."""
    if content is not None and "group" not in content:
        return None
    if (record := FrontRecord.read(content)) is not None:
        return record
    log.warning("sipedge: %s is no record of a Kamailio front; it is written anew", path)
    return None


def live_members(record: FrontRecord, kamailio: str) -> list[int]:
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
            fields = stat_fields(int(entry.name))
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _runs(argv: list[bytes], kamailio: str, config: str) -> bool:
    """Whether `argv` (a /proc cmdline) is `kamailio -f config ...`."""
    words = [word.decode(errors="replace") for word in argv]
    return (len(words) > 2 and os.path.basename(words[0]) == os.path.basename(kamailio)
            and "-f" in words and words.index("-f") + 1 < len(words) and words[words.index("-f") + 1] == config)


def end_group(group: int, members: Callable[[], list[int]]) -> None:
    """SIGTERM to `group`, SIGKILL after END_SECONDS, then waits (bounded) for it to be gone; `members` (its
    processes while the group is still that front, else none) is asked again before each signal: its id may have
    passed to another group. Raises OSError naming the processes a SIGKILL left and what to do."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not (left := members()):
            return
        if signum == signal.SIGKILL:
            # Kamailio's main process exits once every child has (it waits up to its own 60 s): on a loaded host
            # that can outlast the bound. SIGKILL to the whole group leaves no process holding the port.
            log.warning("sipedge: Kamailio's group %d still runs %g s after SIGTERM (pid %s); sending SIGKILL",
                        group, END_SECONDS, ",".join(map(str, left)))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signum)
        deadline = time.monotonic() + END_SECONDS
        while members() and time.monotonic() < deadline:
            time.sleep(GONE_POLL_SECONDS)
    if left := members():
        pids = ",".join(map(str, left))
        # Only a process in uninterruptible sleep (state D: waiting on a disk or a network file system) outlives a
        # SIGKILL; it ends once that I/O returns. It still holds the SIP port, so the edge cannot start meanwhile.
        raise OSError(f"Kamailio's processes of group {group} did not end on SIGKILL: pid {pids} still run. See "
                      f"their state with `ps -o pid,stat,wchan -p {pids}`: one in state D waits on I/O and ends "
                      "when it returns (a hung disk or NFS mount); once none is left, start the edge again, and if "
                      "they stay, restart the host")
