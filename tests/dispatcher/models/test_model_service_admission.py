"""Starts admitted against a shared model service's free streams: the real app in-process (its API, its
timers running as `python -m dispatcher` runs them) with local stand-in bots, and the model server
stand-in (tests/fakes/moshi_server.py) as its own process. That the settings reach a dispatcher process
from its environment: tests/dispatcher/models/test_model_service_reading.py and the settings catalogue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from dispatcher.wiring import running
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.fakes.moshi_server import ModelServerProcess, model_server_process
from tests.support.dispatcher_server import InProcess, in_process
from tests.support.waiting import until

READ_SECONDS = 1.0


@asynccontextmanager
async def dispatcher_for(model: ModelServerProcess) -> AsyncIterator[InProcess]:
    env = {"RESERVE_MAX_IDLE": "0", "MODEL_SERVICE_URL": model.url, "MODEL_SERVICE_READ_SECONDS": str(READ_SECONDS),
           # The stand-in bots never open a stream: each start counts here for the whole test.
           "MODEL_SERVICE_CONNECT_SECONDS": "600"}
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2, bot_env=STANDIN_ENV))
    app = create_app(Settings.from_env(env), env=env, machines=machines, rooms=None)
    async with in_process(app) as dispatcher, running(dispatcher.state):
        await until(lambda: _in_state(dispatcher, "ok"), "a first read of the service")
        yield dispatcher


async def start(dispatcher: InProcess) -> httpx.Response:
    return await dispatcher.client.post("/start", json={})


async def model_status(dispatcher: InProcess) -> dict[str, Any]:
    answer = await dispatcher.client.get("/status")
    assert answer.status_code == 200, answer.text
    return answer.json()["model_service"]


def refused(answer: httpx.Response, code: str) -> dict[str, Any]:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    error = answer.json()["error"]
    assert error["code"] == code, error
    return error


async def test_a_service_with_two_streams_admits_two_starts_and_refuses_the_third_naming_it() -> None:
    with model_server_process(streams=2) as model:
        async with dispatcher_for(model) as dispatcher:
            assert [(await start(dispatcher)).status_code for _ in range(2)] == [201, 201]
            error = refused(await start(dispatcher), "model_service_capacity")
            assert model.url in error["message"] and "0 of 2 free" in error["message"], error
            assert (error["model_service"], error["free_streams"]) == (model.url, 0)
            assert await model_status(dispatcher) | {"read_seconds_ago": None} == {
                "url": model.url, "state": "ok", "free": 2, "total": 2, "read_seconds_ago": None, "problem": None,
                "starting_here": 2}
            starts = (await dispatcher.client.get("/status")).json()["starts"]["1m"]
            assert starts["refusals"] == {"model_service_capacity": 1}, starts


async def test_a_stream_another_caller_holds_leaves_room_for_one_start() -> None:
    with model_server_process(streams=2) as model:
        async with (dispatcher_for(model) as dispatcher,
                    websockets.connect(model.url.replace("http", "ws") + "/api/chat") as stream):
            assert await stream.recv() == b"\x00"  # the stream is ours
            await until(lambda: _free(dispatcher, 1), "the dispatcher to read one free stream")
            assert (await start(dispatcher)).status_code == 201
            error = refused(await start(dispatcher), "model_service_capacity")
            assert "0 of 2 free" in error["message"], error


async def test_a_service_that_dies_is_unavailable_on_status_within_its_read_interval_and_refuses_starts() -> None:
    with model_server_process(streams=2) as model:
        async with dispatcher_for(model) as dispatcher:
            await asyncio.to_thread(model.die)  # the app's reads go on meanwhile, as a process's would
            died = time.monotonic()
            seen = await until(lambda: _in_state(dispatcher, "unknown"), "the death seen")
            # Seen by the failed read itself, before its last answer is old enough to be stale.
            assert time.monotonic() - died < 3 * READ_SECONDS, seen
            assert seen["problem"].startswith("no answer: GET") and "connection refused" in seen["problem"], seen
            assert (seen["free"], seen["total"]) == (None, None)
            error = refused(await start(dispatcher), "model_service_unavailable")
            assert model.url in error["message"] and "connection refused" in error["message"], error
            assert error["free_streams"] is None


async def test_an_answer_that_is_no_capacity_is_unknown_and_refuses_starts() -> None:
    """One such answer end to end; which answers are no capacity: test_capacity_answers.py."""
    with model_server_process(streams=2) as model:
        async with dispatcher_for(model) as dispatcher:
            await asyncio.to_thread(model.set_capacity_answer, {"free": 3, "total": 2})
            seen = await until(lambda: _in_state(dispatcher, "unknown"), "the answer read")
            assert seen["problem"].startswith("its answer is no capacity"), seen
            assert (seen["free"], seen["total"]) == (None, None)
            error = refused(await start(dispatcher), "model_service_unavailable")
            assert "its answer is no capacity" in error["message"], error
            await asyncio.to_thread(model.set_capacity_answer, None)  # a capacity again: admitted again
            await until(lambda: _in_state(dispatcher, "ok"), "a capacity read again")
            assert (await start(dispatcher)).status_code == 201


async def test_a_stopped_session_gives_its_stream_back_so_starts_stopped_at_once_lock_no_one_out() -> None:
    # A start counts against the free streams until its bot has opened its stream (600 s here, as the
    # stand-in bots never do); a key that starts and stops at once would otherwise hold them all.
    with model_server_process(streams=2) as model:
        async with dispatcher_for(model) as dispatcher:
            for _ in range(3):
                answer = await start(dispatcher)
                assert answer.status_code == 201, answer.text
                stopped = await dispatcher.client.delete(f"/sessions/{answer.json()['session_id']}")
                assert stopped.status_code in (202, 204), stopped.text
            assert [(await start(dispatcher)).status_code for _ in range(2)] == [201, 201]
            refused(await start(dispatcher), "model_service_capacity")


async def _in_state(dispatcher: InProcess, state: str) -> dict[str, Any] | None:
    seen = await model_status(dispatcher)
    return seen if seen["state"] == state else None


async def _free(dispatcher: InProcess, free: int) -> bool:
    return (await model_status(dispatcher))["free"] == free
