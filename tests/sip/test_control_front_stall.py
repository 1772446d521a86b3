"""The control API of an edge with several workers (sipedge/control_front.py) when one worker is frozen
(SIGSTOP: its kernel still accepts connections, nothing answers): stand-in workers as processes of their
own (tests/sip/control_stand_in.py). A transfer gets its holder's answer without waiting for the frozen
one, a call sent to the frozen one is answered 504 and stays with it (never placed by a second worker),
and the next call goes to a worker that answers; the edge's status counts the frozen one as not answering.
The front's waits are shortened here; that its own
stay under the dispatcher's is checked against the dispatcher's figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.phone import sip_edge_status, sip_transfers, trunk_calls
from sipedge.control_front import ControlFront, Waits
from tests.sip.control_stand_in import STATUS_CALLS, TOOK
from tests.support.ports import free_port
from tests.support.processes import listens, terminate

SECRET = "edge-control-secret-for-the-tests-0123456789"
WAITS = Waits(calls=2.0, transfer=3.0, warm_transfer=3.0)
ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 30.0


@dataclass
class StandIn:
    process: subprocess.Popen[Any]
    port: int
    output: Path

    def took(self) -> list[str]:
        return [line.removeprefix(TOOK) for line in self.output.read_text().splitlines() if line.startswith(TOOK)]


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[list[StandIn]]:
    """Two stand-in workers; the first holds the answered call of session held-by-0."""
    workers = []
    try:
        for index in range(2):
            port, output = free_port(), tmp_path / f"worker{index}.out"
            with output.open("w") as out:
                process = subprocess.Popen([sys.executable, "-m", "tests.sip.control_stand_in", str(port), SECRET,
                                            f"held-by-{index}"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            workers.append(StandIn(process, port, output))
        deadline = time.monotonic() + START_SECONDS
        while not all(listens(w.process, w.port) for w in workers):
            assert time.monotonic() < deadline and all(w.process.poll() is None for w in workers), \
                [w.output.read_text() for w in workers]
            time.sleep(0.1)
        yield workers
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                os.kill(worker.process.pid, signal.SIGCONT)  # a frozen one would not end
            terminate(worker.process)


def call(session_id: str) -> dict[str, str]:
    return {"session_id": session_id, "stream_path": "/ws/exotel/t", "to": "+14155550100", "from": "+14155550199",
            "trunk": "far", "caller": "local"}


async def test_a_frozen_worker_stalls_no_transfer_and_no_call_is_placed_by_two_workers(
        stand_ins: list[StandIn]) -> None:
    ports: list[int | None] = [worker.port for worker in stand_ins]
    port = free_port()
    front = ControlFront("127.0.0.1", port, SECRET, lambda: ports, WAITS, worker_calls=STATUS_CALLS)
    await front.start()
    # The dispatcher's wait, as it stands to the front's (WAITS: shortened alike).
    control = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAITS.transfer + 5,
                                headers={"Authorization": f"Bearer {SECRET}"})
    try:
        assert (await control.post("/calls", json=call("A"))).status_code == 202  # the first worker's
        os.kill(stand_ins[1].process.pid, signal.SIGSTOP)
        held = await control.post("/calls/held-by-0/transfer", json={"to": "+14155550123", "request_id": "r"})
        assert (held.status_code, held.json()["how"]) == (200, "referred")
        # Nobody answering for the session but the frozen one, which may hold it: unknown, said as such.
        unheard = await control.post("/calls/held-by-1/transfer", json={"to": "+14155550123", "request_id": "r"})
        assert (unheard.status_code, unheard.json()["error"]["code"]) == (504, "transfer_unanswered")
        # The frozen worker is next in turn: its call is unanswered, and stays with it.
        stalled = await control.post("/calls", json=call("B"))
        assert (stalled.status_code, stalled.json()["error"]["code"]) == (504, "call_unanswered")
        assert (await control.post("/calls", json=call("C"))).status_code == 202  # past the frozen one
        status = (await control.get("/status")).json()  # the frozen worker's slots: neither free nor in use
        assert status["workers"] == {"total": 2, "answering": 1}, status
        assert status["calls"] == {"in_progress": 1, "free": STATUS_CALLS - 1, "total": 2 * STATUS_CALLS}, status
        assert status["refused_last_minute"] == 2, status
        os.kill(stand_ins[1].process.pid, signal.SIGCONT)
        assert (await control.post("/calls", json=call("B"))).status_code == 202  # the retry: its worker's answer
    finally:
        await control.aclose()
        await front.close()
    for worker in stand_ins:
        terminate(worker.process)
    assert stand_ins[0].took() == ["A", "C"]
    assert "B" in stand_ins[1].took()


def test_the_fronts_waits_end_after_the_holders_own_and_before_the_dispatchers() -> None:
    from sipedge.call_transfer import HAND_OVER_SECONDS
    from sipedge.warm_transfer import WARM_SECONDS
    waits = Waits()
    assert waits.transfer > HAND_OVER_SECONDS and waits.warm_transfer > WARM_SECONDS
    assert waits.calls < trunk_calls.REQUEST_SECONDS
    assert waits.transfer < sip_transfers.REQUEST_SECONDS
    assert waits.warm_transfer < sip_transfers.REQUEST_SECONDS + sip_transfers.WARM_EXTRA_SECONDS
    assert waits.status < sip_edge_status.ASK_SECONDS
