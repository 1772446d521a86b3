"""Starts admitted against a shared model service's free streams: a real `python -m dispatcher` with
local stand-in bots, and the model server stand-in (tests/fakes/moshi_server.py) as its own process."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.fakes.moshi_server import ModelServerProcess, model_server_process
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until

READ_SECONDS = 1.0


@contextmanager
def dispatcher_for(tmp_path: Path, model: ModelServerProcess) -> Iterator[DispatcherProcess]:
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve",
           "RESERVE_MAX_IDLE": "0", "MODEL_SERVICE_URL": model.url, "MODEL_SERVICE_READ_SECONDS": str(READ_SECONDS),
           # The stand-in bots never open a stream: each start counts here for the whole test.
           "MODEL_SERVICE_CONNECT_SECONDS": "600"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        yield dispatcher


def start(dispatcher: DispatcherProcess) -> httpx.Response:
    return httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30)


def model_status(dispatcher: DispatcherProcess) -> dict[str, Any]:
    answer = httpx.get(f"{dispatcher.base_url}/status", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["model_service"]


def refused(answer: httpx.Response, code: str) -> dict[str, Any]:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    error = answer.json()["error"]
    assert error["code"] == code, error
    return error


def test_a_service_with_two_streams_admits_two_starts_and_refuses_the_third_naming_it(tmp_path: Path) -> None:
    with model_server_process(streams=2) as model, dispatcher_for(tmp_path, model) as dispatcher:
        assert [start(dispatcher).status_code for _ in range(2)] == [201, 201]
        error = refused(start(dispatcher), "model_service_capacity")
        assert model.url in error["message"] and "0 of 2 free" in error["message"], error
        assert (error["model_service"], error["free_streams"]) == (model.url, 0)
        assert model_status(dispatcher) | {"read_seconds_ago": None} == {
            "url": model.url, "state": "ok", "free": 2, "total": 2, "read_seconds_ago": None, "problem": None,
            "starting_here": 2}
        starts = httpx.get(f"{dispatcher.base_url}/status", timeout=10).json()["starts"]["1m"]
        assert starts["refusals"] == {"model_service_capacity": 1}, starts


def test_a_stream_another_caller_holds_leaves_room_for_one_start(tmp_path: Path) -> None:
    async def hold_a_stream() -> None:
        async with websockets.connect(model.url.replace("http", "ws") + "/api/chat") as stream:
            assert await stream.recv() == b"\x00"  # the stream is ours
            wait_until(lambda: model_status(dispatcher)["free"] == 1, "the dispatcher to read one free stream")
            assert start(dispatcher).status_code == 201
            error = refused(start(dispatcher), "model_service_capacity")
            assert "0 of 2 free" in error["message"], error

    with model_server_process(streams=2) as model, dispatcher_for(tmp_path, model) as dispatcher:
        asyncio.run(hold_a_stream())


def test_a_service_that_dies_is_unavailable_on_status_within_its_read_interval_and_refuses_starts(
        tmp_path: Path) -> None:
    with model_server_process(streams=2) as model, dispatcher_for(tmp_path, model) as dispatcher:
        wait_until(lambda: model_status(dispatcher)["state"] == "ok", "a first read of the service")
        model.die()
        died = time.monotonic()
        seen = wait_until(lambda: (s := model_status(dispatcher))["state"] == "unknown" and s, "the death seen")
        # Seen by the failed read itself, before its last answer is old enough to be stale.
        assert time.monotonic() - died < 3 * READ_SECONDS, seen
        assert seen["problem"].startswith("no answer: GET") and "connection refused" in seen["problem"], seen
        assert (seen["free"], seen["total"]) == (None, None)
        error = refused(start(dispatcher), "model_service_unavailable")
        assert model.url in error["message"] and "connection refused" in error["message"], error
        assert error["free_streams"] is None


def test_an_answer_that_is_no_capacity_is_unknown_and_refuses_starts(tmp_path: Path) -> None:
    """One such answer end to end; which answers are no capacity: test_capacity_answers.py."""
    with model_server_process(streams=2) as model, dispatcher_for(tmp_path, model) as dispatcher:
        model.set_capacity_answer({"free": 3, "total": 2})
        seen = wait_until(lambda: (s := model_status(dispatcher))["state"] == "unknown" and s, "the answer read")
        assert seen["problem"].startswith("its answer is no capacity"), seen
        assert (seen["free"], seen["total"]) == (None, None)
        error = refused(start(dispatcher), "model_service_unavailable")
        assert "its answer is no capacity" in error["message"], error
        model.set_capacity_answer(None)  # a capacity again: admitted again
        wait_until(lambda: model_status(dispatcher)["state"] == "ok", "a capacity read again")
        assert start(dispatcher).status_code == 201


def test_a_stopped_session_gives_its_stream_back_so_starts_stopped_at_once_lock_no_one_out(tmp_path: Path) -> None:
    # A start counts against the free streams until its bot has opened its stream (600 s here, as the
    # stand-in bots never do); a key that starts and stops at once would otherwise hold them all.
    with model_server_process(streams=2) as model, dispatcher_for(tmp_path, model) as dispatcher:
        for _ in range(3):
            answer = start(dispatcher)
            assert answer.status_code == 201, answer.text
            stopped = httpx.delete(f"{dispatcher.base_url}/sessions/{answer.json()['session_id']}", timeout=30)
            assert stopped.status_code in (202, 204), stopped.text
        assert [start(dispatcher).status_code for _ in range(2)] == [201, 201]
        refused(start(dispatcher), "model_service_capacity")
