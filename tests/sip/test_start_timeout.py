"""An edge whose workers do not come up in time says which did not, and how long it waited: the
timeout's own message is empty, and `sipedge: the edge did not start: ` alone names no cause."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from sipedge import supervisor
from sipedge.supervisor import Child, Supervisor, _start_all
from tests.sip.test_front_parts import edge

SILENT = [sys.executable, "-c", "import time; time.sleep(30)"]  # never prints "sipedge: ready"
READY = [sys.executable, "-c", "print('sipedge: ready', flush=True); import time; time.sleep(30)"]


async def test_workers_not_ready_in_time_are_named_with_the_seconds_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervisor, "READY_SECONDS", 2.0)
    front = Supervisor(edge(tmp_path))
    children = [Child("worker 0", SILENT, {}, front._worker_ready), Child("worker 1", READY, {}, front._worker_ready),
                Child("worker 2", SILENT, {}, front._worker_ready), Child("kamailio", READY, {}, front._worker_ready)]
    try:
        with pytest.raises(OSError) as refused:
            await _start_all(children[:-1], children[-1])  # the workers, then the front (Kamailio)
    finally:
        await asyncio.gather(*(child.stop() for child in children))
        shutil.rmtree(front._folder, ignore_errors=True)  # its front's folder, written for Kamailio
    said = str(refused.value)
    assert "worker 0 was not ready within 2 s" in said and "worker 2 was not ready within 2 s" in said, said
    assert "worker 1" not in said and children[-1].process is None  # the ready one is not blamed; no front started
