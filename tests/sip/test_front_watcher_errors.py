"""The supervisor's own faults (sipedge/supervisor.py): an error none foresaw in a watcher stops the edge with a
non-zero exit and says so, rather than ending it as an orderly stop would (exit 0, which a restart policy
"on failure" leaves down); and a worker's standard output is passed on off the event loop, so that a stalled
output of the edge's never holds the loop (and Kamailio's log reader with it)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from sipedge import supervisor as supervised
from sipedge.supervisor import Child, Supervisor
from tests.sip.test_front_parts import edge

WAIT_SECONDS = 10.0


def test_an_unforeseen_error_in_a_watcher_stops_the_edge_as_failed_and_is_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(supervised, "RESTART_FIRST_SECONDS", 0.01)
    supervisor = Supervisor(edge(tmp_path, "workers = 2"))
    starts: list[Child] = []

    async def ready(child: Child) -> None:
        starts.append(child)
        if len(starts) > 2:  # the worker's restart: an error no part of the supervisor expects
            raise RuntimeError("a fault of the supervisor's own")

    async def run() -> None:
        env = {"PATH": "/usr/bin:/bin"}
        worker = Child("worker 0", ["sh", "-c", "exit 3"], env, ready)  # exits at once: started again
        kamailio = Child("kamailio", ["sleep", "60"], env, ready, own_group=True)
        try:
            await asyncio.wait_for(supervisor._serve([worker, kamailio]), WAIT_SECONDS)
        finally:
            await kamailio.stop()
            await worker.stop()

    with caplog.at_level(logging.ERROR, "sipedge"):
        asyncio.run(run())
    assert supervisor.failed is not None and "a fault of the supervisor's own" in supervisor.failed
    assert any(record.exc_info and "watching worker 0" in record.getMessage() for record in caplog.records)


def test_a_stalled_output_never_holds_the_loop_on_a_workers_lines(tmp_path: Path) -> None:
    program = textwrap.dedent(f"""
        import asyncio, os, sys
        from pathlib import Path
        from sipedge.supervisor import Child, Supervisor
        from tests.sip.test_front_parts import edge

        async def main():
            supervisor = Supervisor(edge(Path({str(tmp_path)!r}), "workers = 2"))
            noisy = "for i in range(200): print('x' * 1000)\\n"  # far more than a pipe holds
            worker = Child("worker 0", [sys.executable, "-c", noisy + "print('sipedge: ready')\\n" + noisy
                           + "import time; time.sleep(60)"], {{"PATH": "/usr/bin:/bin"}}, supervisor._worker_ready)
            await worker.start()
            for _ in range(20):  # the loop still turns while the worker's lines are relayed
                await asyncio.sleep(0.01)
            sys.stderr.write("the loop turns\\n")
            sys.stderr.flush()
            worker.kill(worker.process)
            os._exit(0)  # not waiting on the stalled output at exit

        asyncio.run(main())
    """)
    # Our standard output is a pipe nobody reads: once its buffer is full each write to it waits.
    edge_process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    bound = threading.Timer(WAIT_SECONDS * 3, edge_process.kill)  # a loop held for good: its end, bounded
    bound.start()
    try:
        assert edge_process.stderr is not None
        said = edge_process.stderr.readline()  # its first line, or its end
        assert said == b"the loop turns\n", said + edge_process.stderr.read(4096)
    finally:
        bound.cancel()
        edge_process.kill()
        edge_process.communicate(timeout=WAIT_SECONDS * 6)
