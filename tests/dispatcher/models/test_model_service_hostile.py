"""A hostile or broken model service, on a real HTTP server: a huge body, an endless chunked one, a
slow one a byte at a time, a redirect to another host, a count too big for a whole number. Each read
ends within its interval and bounded in bytes, leaves the capacity unknown (never a number to admit
on), and neither the problem nor the log line repeats the URL's password."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from dispatcher.models.capacity import MAX_ANSWER_BYTES, ModelServiceCapacity
from dispatcher.models.settings import ModelServiceSettings
from tests.support.hook_receiver import hook_receiver

PASSWORD = "s3cret-model-pass"


async def huge(request: web.Request) -> web.StreamResponse:
    answer = web.StreamResponse(headers={"Content-Type": "application/json"})
    await answer.prepare(request)
    await answer.write(b'{"free": 1, "total": 2' + b" " * (64 * MAX_ANSWER_BYTES) + b"}")
    return answer


async def endless(request: web.Request) -> web.StreamResponse:
    answer = web.StreamResponse()
    answer.enable_chunked_encoding()
    await answer.prepare(request)
    while True:
        await answer.write(b" " * 512)
        await asyncio.sleep(0.001)


async def slow(request: web.Request) -> web.StreamResponse:
    answer = web.StreamResponse()
    await answer.prepare(request)
    for byte in b'{"free": 1, "total": 2}':  # each byte well within a per-read timeout, the whole far past it
        await answer.write(bytes([byte]))
        await asyncio.sleep(0.3)
    return answer


async def redirect(request: web.Request) -> web.Response:
    # To another host name, where a capacity is answered: followed, it would be taken as this service's.
    raise web.HTTPFound(f"http://localhost:{request.url.port}/fine/api/capacity")


async def fine(request: web.Request) -> web.Response:
    return web.Response(text='{"free": 5, "total": 5}')


async def too_big(request: web.Request) -> web.Response:
    return web.Response(text='{"free": 100000000000000000000, "total": 100000000000000000000}')


PATH = "/{name}/api/capacity"
ANSWERS = {"huge": huge, "endless": endless, "slow": slow, "redirect": redirect, "too-big": too_big}


async def answered(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    return await (fine(request) if name == "fine" else ANSWERS[name](request))


@pytest.fixture
async def service() -> AsyncIterator[str]:
    async with hook_receiver(answered, method="GET", path=PATH) as url:  # type: ignore[arg-type]  # a stream too
        yield url.removesuffix(PATH).replace("http://", f"http://user:{PASSWORD}@")


@pytest.mark.parametrize("name", ANSWERS)
async def test_a_hostile_answer_is_unknown_within_the_interval_and_never_repeats_the_password(
        service: str, name: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = ModelServiceSettings(f"{service}/{name}", read_seconds=2.0)
    capacity = ModelServiceCapacity(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="dispatcher.models"):
            began = time.monotonic()
            reading = await capacity.read_now()
            took = time.monotonic() - began
    finally:
        await capacity.aclose()
    assert (reading.known, reading.free, reading.total) == (False, None, None), reading
    # Three tries of at most a second each, their sleeps within the interval: never the slow body's 7 s.
    assert took < settings.read_seconds + 2 * settings.timeout_seconds, took
    assert PASSWORD not in str(reading.as_json()) and PASSWORD not in caplog.text
    assert f"model service {settings.shown}: capacity unknown" in caplog.text
