"""A hostile review of the SIP front's supervision (sipedge/supervisor.py, front_refusals.py, log_relay.py): each
test is a case it got wrong (each was a strict xfail until it was fixed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import cast

import pytest

from sipedge import supervisor as supervised
from sipedge.front_refusals import in_group, new_mark, read_front_log
from sipedge.log_relay import LogRelay
from sipedge.refusal_log import RefusalLog
from sipedge.supervisor import Child, Supervisor
from tests.sip.test_front_parts import edge

WAIT_SECONDS = 10.0


def test_a_restart_whose_child_runs_but_is_never_ready_is_killed_and_tried_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervised, "RESTART_FIRST_SECONDS", 0.01)
    supervisor = Supervisor(edge(tmp_path, "workers = 2"))
    starts: list[asyncio.subprocess.Process] = []

    async def ready(child: Child) -> None:
        assert child.process is not None
        starts.append(child.process)
        if len(starts) == 2:  # as `_front_ready` says after READY_SECONDS, its process still running
            raise OSError("Kamailio did not answer on udp 127.0.0.1:5060")

    async def run() -> None:
        child = Child("kamailio", ["sh", "-c", "exit 3"], {"PATH": "/usr/bin:/bin"}, ready, own_group=True)
        await child.start()  # the first start runs, then exits on its own (a crash)
        child.argv = ["sleep", "60"]  # each later start runs on, answering nothing
        watch = asyncio.create_task(supervisor._watch(child))
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while len(starts) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            supervisor._stopping.set()
            for process in starts:  # the test's own `sleep`s, by their groups
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            await asyncio.wait_for(watch, WAIT_SECONDS)
            for process in starts:
                assert process.stdout is not None
                await asyncio.wait_for(process.stdout.read(), WAIT_SECONDS)
                await asyncio.wait_for(process.wait(), WAIT_SECONDS)

    asyncio.run(run())
    assert len(starts) >= 3, "the start that never became ready was neither killed nor started again"


class Relayed:
    """What `read_front_log` passes on, as the supervisor's relay gets it."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def put(self, line: bytes) -> None:
        self.lines.append(line)


def test_a_senders_text_laid_out_as_entries_for_a_range_of_ids_never_passes_as_kamailios_own() -> None:
    group = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)  # Kamailio's stand-in
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(_members(group.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(_members(group.pid)) >= 3
        # A genuine entry of the parser's (one of the group's), logging a malformed datagram whose text lays out one
        # entry an id, as Kamailio's JSON engine writes it (the sender's newlines escaped); and entries of the same
        # shape from a live process outside the group (what a reused id would be).
        forged = "".join(f"\n{rank % 10}({pid}) ERROR: <core> [core/tcp_main.c:4790]: all SIP workers dead"
                         for rank, pid in enumerate(range(max(2, group.pid - 20), group.pid + 20)))
        genuine = _entry(group.pid, f"message=<INVITE sip:a@b SIP/2.0{forged}>")
        strangers = "".join(_entry(os.getpid(), "all SIP workers dead") for _ in range(3))
        log = (genuine + strangers).encode()
        relayed = Relayed()
        asyncio.run(_read(log, relayed, group.pid))
    finally:
        os.killpg(group.pid, signal.SIGKILL)
        group.wait(WAIT_SECONDS)
    assert len(relayed.lines) == 4, relayed.lines  # the sender's text stayed inside its one entry
    assert not relayed.lines[0].startswith(b"kamailio: | "), relayed.lines[0]  # Kamailio's own
    passing = [line for line in relayed.lines[1:] if not line.startswith(b"kamailio: | ")]
    assert not passing, f"{len(passing)} entries of a process outside the group pass as Kamailio's own: {passing[:2]}"


def _entry(pid: int, message: str) -> str:
    """One line of Kamailio's JSON log engine (`--log-engine=json:M`), as `ksr_slog_json` lays it out."""
    return json.dumps({"idx": 1, "pid": pid, "level": "ERROR", "module": "core", "file": "core/parser/msg_parser.c",
                       "line": 748, "function": "parse_msg", "message": message}) + "\n"


async def _read(log: bytes, relayed: Relayed, group: int) -> None:
    """`log` read as the supervisor reads Kamailio's standard error, its entries told by `group`'s ids."""
    stream = asyncio.StreamReader()
    stream.feed_data(log)
    stream.feed_eof()
    await read_front_log(stream, RefusalLog(), new_mark(), cast(LogRelay, relayed), in_group(group))


def _members(group: int) -> list[int]:
    """The ids of process group `group`'s processes."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry.name)) == group:
                    members.append(int(entry.name))
    return members


def test_lines_queued_when_the_process_exits_are_written_or_said_left_out() -> None:
    program = textwrap.dedent("""
        import sys, time
        from sipedge.log_relay import LogRelay

        class Slow:  # a terminal or a log pipe that takes a moment per write
            def write(self, line):
                time.sleep(0.005)
                sys.stdout.buffer.write(line)

            def flush(self):
                sys.stdout.buffer.flush()

        relay = LogRelay(Slow, "kamailio")
        for index in range(200):
            relay.put(f"line {index}\\n".encode())
    """)
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=True)
    written = len(re.findall(rb"^line \d+$", ran.stdout, re.MULTILINE))
    said = sum(int(n) for n in re.findall(rb"^kamailio: (\d+) lines", ran.stdout, re.MULTILINE))
    assert written + said == 200, f"{200 - written - said} of 200 lines lost without a word ({written} written)"
