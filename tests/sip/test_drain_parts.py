"""The drain's parts without a stop (sipedge/drain.py; the edge's whole stop: tests/sip/test_drain.py): the key's
bounds, the signals, the wait, and what a draining edge, its control API and its front refuse, and what they still
take."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipedge import control, supervisor
from sipedge.call_transfer import NotHanded
from sipedge.config import ConfigError, load
from sipedge.drain import DEFAULT_DRAIN_SECONDS, DRAINED_LINE, REPEAT_SECONDS, FirstSignal, StopSignals, drained
from sipedge.edge_status import edge_status, workers_status
from sipedge.log_relay import LogRelay
from tests.sip.test_call_slots import ringing, wound_down
from tests.sip.test_control_front import CALL, SECRET, StandIn, fronted
from tests.sip.test_edge_parts import TRUNK
from tests.sip.test_outbound_parts import ringing_edge

INVITE = "INVITE sip:+14155550199@127.0.0.1 SIP/2.0\r\n\r\n"
ORDER = {"session_id": "s1", "stream_path": "/ws/exotel/t", "to": "+14155550100", "from": "+14155550199",
         "trunk": "twilio", "caller": "team-a"}


def edge_file(tmp_path: Path, line: str) -> dict[str, str]:
    path = tmp_path / "edge.toml"
    path.write_text(line + "\n" + TRUNK)
    return {"SIP_EDGE_CONFIG": str(path), "SALES_KEY": "k"}


@pytest.mark.parametrize(("line", "said"), [
    ("drain_seconds = -1", "drain_seconds: Input should be greater than or equal to 0"),
    ("drain_seconds = 7201", "drain_seconds: Input should be less than or equal to 7200"),
    ('drain_seconds = "300"', "drain_seconds: Input should be a valid integer"),
    ("drain_seconds = 2.5", "drain_seconds: Input should be a valid integer"),
    ("drain_seconds = true", "drain_seconds: Input should be a valid integer"),
])
def test_a_drain_that_is_no_whole_number_of_seconds_within_its_bounds_is_refused_naming_the_key(
        tmp_path: Path, line: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        load(edge_file(tmp_path, line))


def test_the_drain_is_five_minutes_unless_the_file_says_and_zero_means_none(tmp_path: Path) -> None:
    assert load(edge_file(tmp_path, "")).drain_seconds == DEFAULT_DRAIN_SECONDS == 300
    assert load(edge_file(tmp_path, "drain_seconds = 0")).drain_seconds == 0


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_first_stop_signal_asks_for_the_stop_and_the_second_for_it_now() -> None:
    clock = Clock()
    stop = StopSignals(clock)
    stop.signalled()
    assert stop.asked.is_set() and not stop.now.is_set()
    clock.now += REPEAT_SECONDS
    stop.signalled()
    assert stop.now.is_set()
    worker = StopSignals(clock)  # a worker's SIGTERM: its supervisor's stop at once, drained or not
    worker.stop_now()
    assert worker.asked.is_set() and worker.now.is_set()


async def test_a_stop_signal_repeated_within_a_second_of_the_first_is_the_same_stop_not_a_stop_now(
        caplog: pytest.LogCaptureFixture) -> None:
    """A host's shutdown signals the container itself beside the unit's `podman stop`: the edge drains still."""
    clock = Clock()
    stop = StopSignals(clock)
    stop.signalled()
    clock.now += REPEAT_SECONDS / 2
    with caplog.at_level(logging.WARNING, "sipedge"):
        stop.signalled()
    assert stop.asked.is_set() and not stop.now.is_set()
    assert "SIGTERM again within 1 s of the first: the same stop, ignored" in caplog.text
    clock.now += REPEAT_SECONDS  # a person's second signal, later
    stop.signalled()
    assert stop.now.is_set()


async def test_a_drain_ends_once_nothing_is_left_its_bound_passes_or_it_is_told_to_stop_now() -> None:
    left = [2]
    waiting = asyncio.create_task(drained(lambda: left[0], 60, asyncio.Event()))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    left[0] = 0
    assert await asyncio.wait_for(waiting, 30) == 0
    assert await asyncio.wait_for(drained(lambda: 1, 0.2, asyncio.Event()), 30) == 1  # the bound passed: 1 left
    now = asyncio.Event()
    cut = asyncio.create_task(drained(lambda: 3, 60, now))
    await asyncio.sleep(0.3)
    now.set()
    assert await asyncio.wait_for(cut, 30) == 3


async def test_a_draining_edge_refuses_an_invite_503_and_a_new_call_or_leg_but_takes_a_retried_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The INVITE's 503 carries Retry-After and not the front's mark for the next worker (each drains alike); it is
    counted and logged as the other refusals. A retried hand-over of a call taken already is still 202."""
    edge = ringing_edge(tmp_path, monkeypatch)
    answered: list[tuple[int, int | None, bool]] = []
    refused = ringing(1)
    refused.respond = (lambda status, retry_after=None, session_id=None, full=False:  # as SipCall.respond takes it
                       answered.append((status, retry_after, full)))
    api = control.Control(edge, SECRET)
    signed = {"Authorization": f"Bearer {SECRET}"}
    try:
        async with TestClient(TestServer(api.app())) as client:
            assert (await client.post("/calls", json=ORDER, headers=signed)).status == 202
            edge.draining = True
            with caplog.at_level(logging.WARNING, logger="sipedge"):
                edge._incoming(refused, "127.0.0.1:5070", INVITE)
            assert answered == [(503, 5, False)] and edge.refusals.total == 1
            assert "refused 503: the edge is draining" in caplog.text
            assert (await client.post("/calls", json=ORDER, headers=signed)).status == 202  # the retry: taken already
            new = await client.post("/calls", json={**ORDER, "session_id": "s2"}, headers=signed)
            assert (new.status, (await new.json())["error"]["code"], new.headers.get("Retry-After")) == \
                (503, "edge_draining", "5")
            status = await client.get("/status", headers=signed)
            assert (await status.json())["draining"] is True
        placed: list[str] = []
        with pytest.raises(NotHanded) as leg:
            edge.leg(lambda: placed.append("the person's call") or ringing(2))  # type: ignore[func-returns-value]
        assert (leg.value.status, leg.value.code, placed) == (503, "edge_draining", [])
        assert edge_status(edge, 0.0)["draining"] is True
    finally:
        await api.close()
        await wound_down(edge)


@pytest.fixture
async def draining_front() -> AsyncIterator[tuple[str, list[StandIn], list[bool]]]:
    """The control API of an edge with two stand-in workers, and its drain: set `drain[0]` to drain."""
    drain = [False]
    async with fronted(lambda: drain[0]) as (url, workers, _):
        yield url, workers, drain


async def test_a_draining_fronts_new_call_is_503_edge_draining_a_retried_one_goes_to_its_worker(
        draining_front: tuple[str, list[StandIn], list[bool]]) -> None:
    url, workers, drain = draining_front
    for worker in workers:
        worker.answers["/calls"] = (202, "taken")
    async with httpx.AsyncClient(base_url=url, timeout=10, headers={"Authorization": f"Bearer {SECRET}"}) as api:
        assert (await api.post("/calls", json=CALL)).status_code == 202
        drain[0] = True
        new = await api.post("/calls", json={**CALL, "session_id": "s2"})
        assert (new.status_code, new.json()["error"]["code"], new.headers.get("Retry-After")) == \
            (503, "edge_draining", "5")
        assert [len(w.asked) for w in workers] == [1, 0]  # no worker was asked the new one
        assert (await api.post("/calls", json=CALL)).status_code == 202  # the retry: to the worker that took it
        assert [len(w.asked) for w in workers] == [2, 0]


def test_an_edge_with_workers_drains_when_its_front_or_any_worker_does(tmp_path: Path) -> None:
    trunks = load(edge_file(tmp_path, "")).trunks
    worker = {"ready": True, "calls": {"in_progress": 1, "free": 2, "total": 3}, "draining": False}
    assert workers_status([worker, worker], 3, trunks, 0.0)["draining"] is False
    assert workers_status([worker, {**worker, "draining": True}], 3, trunks, 0.0)["draining"] is True
    assert workers_status([worker, None], 3, trunks, 0.0, draining=True)["draining"] is True


async def test_a_workers_drained_line_is_the_supervisors_and_a_second_signal_reaches_the_draining_workers(
        tmp_path: Path) -> None:
    """The supervisor reads a worker's DRAINED_LINE (not passed on to the edge's output), and its own second stop
    signal stops each worker it told to drain (SIGTERM): here a process that stands in for a worker, ended by it."""
    config = load(edge_file(tmp_path, "workers = 2"))
    edge = supervisor.Supervisor(config)

    async def ready(_: supervisor.Child) -> None:
        return None

    worker = supervisor.Child("worker 0", [sys.executable, "-c", "import time; time.sleep(120)"], {}, ready)
    await worker.start()
    relayed: list[bytes] = []
    relay = LogRelay(lambda: sys.stdout.buffer, "a worker")
    relay.put = relayed.append  # type: ignore[method-assign]
    try:
        async def lines() -> AsyncIterator[bytes]:
            for line in (b"a worker's line\n", f"{DRAINED_LINE}\n".encode()):
                yield line

        await supervisor._relay(lines(), relay, worker)
        assert worker.drained and relayed == [b"a worker's line\n"]
        edge._draining, edge.draining = [worker], True
        clock = Clock()
        edge._first_signal = FirstSignal(clock)
        edge._signalled()  # the first: the drain (its workers were told by `_drain`)
        edge._signalled()  # the same stop told twice (a host's shutdown): not a second signal
        assert worker.process is not None and worker.process.returncode is None and not edge._stop_now.is_set()
        clock.now += REPEAT_SECONDS
        edge._signalled()  # the second: the workers stopped
        assert await asyncio.wait_for(worker.process.wait(), 30) == -signal.SIGTERM
    finally:
        await worker.stop()
        relay.close()
        shutil.rmtree(edge._folder, ignore_errors=True)  # the front's folder, made for a run that never came
