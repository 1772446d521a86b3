"""Review: a worker that exited just before the edge's SIGTERM, its restart waiting out its back-off
(RESTART_FIRST_SECONDS up to 30 s), is started again during the drain. Supervisor._watch checks `_stopping` only
when a worker exits, not after its back-off's sleep, and `_serve` cancels the watchers only after `_drain`. The fresh
worker was never sent DRAIN_SIGNAL (`_signal` skips a process that has exited), so it takes Kamailio's new INVITEs for
the whole drain (answered, then cut at its end), and it never prints DRAINED_LINE, so the supervisor's `drained` wait
always runs its full `drain_seconds + STOP_SECONDS` however soon the real calls end."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from pathlib import Path

import pytest

from sipedge import supervisor
from sipedge.config import load
from tests.sip.test_drain_parts import edge_file
from tests.support.waiting import within


async def test_a_worker_whose_restart_was_pending_when_the_drain_began_is_not_started_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    edge = supervisor.Supervisor(load(edge_file(tmp_path, "workers = 2")))
    starts: list[int] = []

    async def ready(child: supervisor.Child) -> None:
        assert child.process is not None
        starts.append(child.process.pid)

    worker = supervisor.Child("worker 0", [sys.executable, "-c", "pass"], {}, ready)  # exits at once: a crash
    await worker.start()
    worker.failures = 3  # its fourth exit in a row: a 4 s back-off, which the signal below comes well within
    watching = asyncio.create_task(edge._watch(worker))
    try:
        with caplog.at_level(logging.ERROR, "sipedge"):
            assert await within(lambda: "starting it again" in caplog.text) is not None, caplog.text
        edge._signalled()  # the edge's SIGTERM, while the restart waits out its back-off: the drain begins
        await asyncio.wait_for(watching, 60)  # returns either way: the stand-in exits at once each time
        assert len(starts) == 1, f"started again during the drain: {starts}"
    finally:
        watching.cancel()
        await worker.stop()
        shutil.rmtree(edge._folder, ignore_errors=True)
