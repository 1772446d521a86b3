"""Kamailio runs in a process group of its own because its children outlive its main process, holding its
port (sipedge/supervisor.py `Child.own_group`). That group is killed when the supervisor stops Kamailio, yet
nothing kills it when the main process exits on its own (a crash, the OOM killer): its children hold its
output pipes too, so `Process.wait()` (asyncio waits for the pipes' end as well as the exit) does not
return, `_watch` never starts Kamailio again, and its log reader never ends to trigger `_log_read_ended`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from sipedge import supervisor as supervised
from sipedge.supervisor import Child, Supervisor
from tests.sip.test_front_log_parts import _alive
from tests.sip.test_front_parts import edge

RESTART_SECONDS = 3.0  # the first restart is due after RESTART_FIRST_SECONDS, set to 0.01 here
WAIT_SECONDS = 10.0


def test_a_kamailio_whose_main_process_exited_is_started_again_with_nothing_of_it_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervised, "RESTART_FIRST_SECONDS", 0.01)
    supervisor = Supervisor(edge(tmp_path, "workers = 2"))
    left: list[int] = []  # each start's own child (a `sleep`), as Kamailio's receivers outlive their main
    at_restart: list[bool] = []  # whether the first start's child still ran when the next one started
    outputs: list[asyncio.StreamReader] = []

    async def ready(child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        outputs.append(child.process.stdout)
        left.append(int((await child.process.stdout.readline()).strip()))
        if len(left) == 2:
            at_restart.append(_alive(left[0]))

    async def run() -> None:
        child = Child("kamailio", ["sh", "-c", "sleep 60 & echo $!; exit 3"], {"PATH": "/usr/bin:/bin"}, ready,
                      own_group=True)
        await child.start()
        watch = asyncio.create_task(supervisor._watch(child))
        try:
            for _ in range(int(RESTART_SECONDS / 0.05)):
                if at_restart:
                    break
                await asyncio.sleep(0.05)
        finally:
            supervisor._stopping.set()
            for pid in left:  # the test's own `sleep`s, by their ids: the pipes end, the watcher returns
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(watch, WAIT_SECONDS)
            for output in outputs:  # each start's output ends, its whole group gone (and its pipes closed here)
                await asyncio.wait_for(output.read(), WAIT_SECONDS)

    asyncio.run(run())
    assert at_restart == [False]
