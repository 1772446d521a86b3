"""What every fake external API shares: a real HTTP server on 127.0.0.1, failure and latency knobs,
and a record of the calls it received.

Each fake (Daily, Fly, Compute Engine, the ECS proxy) is a Starlette app; `FakeServer` serves it
with uvicorn in a background thread so the code under test talks real HTTP to it, through the
same endpoint override a deployment would use (`DAILY_API_URL`, `FLY_API_HOST`, …).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.ports import free_port
from tests.support.quick_uvicorn import QuickServer
from tests.support.waiting import DEFAULT_TIMEOUT, within

# The environment a container's process starts with from a Debian-based image alone: the bot
# processes the fakes run for a machine get this, the image's and the launch's values, never the
# test process's own environment (which no cloud machine holds).
IMAGE_PATH = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(kw_only=True)
class CallMatch:
    """Which calls a knob applies to, and how many more times."""

    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    path_suffix: str | None = None  # e.g. "/machines": the create, not "/machines/{id}/stop"

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
            and (self.path_suffix is None or path.endswith(self.path_suffix))
        )


@dataclass
class Failure(CallMatch):
    """Answer the next `times` matching calls with `status` (+ `Retry-After`) instead of serving them."""

    status: int
    retry_after: float | None = None
    body: Any = None


@dataclass
class Delay(CallMatch):
    """Hold the next `times` matching calls for `seconds` before serving them (a slow or hanging
    API: the call is still served afterwards, as a server that accepted it would)."""

    seconds: float


@dataclass
class Hold(CallMatch):
    """Hold the next `times` matching calls until `release()`, then serve them: a hanging API
    with no clock in it. The client's own timeout is what ends its wait; the test decides when
    the held calls land (after the client's answer, say) instead of racing a sleep."""

    caught: int = 0  # calls held so far
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()

    async def until_released(self) -> None:
        while not self.released.is_set():  # the fake's loop runs in its own thread: poll the event
            await asyncio.sleep(0.005)


@dataclass
class Knobs:
    latency: float = 0.0  # seconds added to every call
    failures: list[Failure] = field(default_factory=list)
    delays: list[Delay] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)

    def take_hold(self, method: str, path: str) -> Hold | None:
        for hold in self.holds:
            if hold.times > 0 and hold.matches(method, path):
                hold.times -= 1
                hold.caught += 1
                return hold
        return None

    def release_all(self) -> None:
        for hold in self.holds:
            hold.release()

    def take_delay(self, method: str, path: str) -> float:
        for delay in self.delays:
            if delay.times > 0 and delay.matches(method, path):
                delay.times -= 1
                return delay.seconds
        return 0.0

    def take_failure(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.times > 0 and failure.matches(method, path):
                failure.times -= 1
                return failure
        return None


Handler = Callable[[Request], Awaitable[Response]]


class FakeApi:
    """Base of the fakes: subclasses list their routes; knobs and records are applied around them."""

    error_body: Callable[[int], Any] = staticmethod(lambda status: {"error": f"injected {status}"})

    def __init__(self) -> None:
        self.url = ""  # set by `serve`: the base URL clients are configured with
        self.knobs = Knobs()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._in_flight = 0

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def close(self) -> None:
        """Whatever the fake opened besides its HTTP server (a machine's socket), closed with it."""

    def admit(self, request: Request) -> Response | None:
        """The answer a call gets as it arrives, before any hold or delay holds it (an API's rate
        limit, counted at its door), or None to admit it. A call admitted and then held was counted
        when it came, so it is served when it lands, never refused then."""
        return None

    def fail(self, status: int, **kwargs: Any) -> Failure:
        failure = Failure(status=status, **kwargs)
        self.knobs.failures.append(failure)
        return failure

    def hold(self, **kwargs: Any) -> Hold:
        hold = Hold(**kwargs)
        self.knobs.holds.append(hold)
        return hold

    def reset_knobs(self) -> None:
        """No injected failures, delays or holds any more; calls held so far are released."""
        self.knobs.release_all()
        self.knobs = Knobs()

    def delay(self, seconds: float, **kwargs: Any) -> Delay:
        delay = Delay(seconds=seconds, **kwargs)
        self.knobs.delays.append(delay)
        return delay

    @staticmethod
    async def eventually(condition: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Whether `condition` holds within `timeout` (for work the dispatcher finishes in the
        background, such as ending a failed start's room)."""
        return await within(condition, timeout, interval=0.02) is not None

    def in_flight(self) -> int:
        """Calls received and not yet answered (e.g. still held by a `delay`)."""
        return self._in_flight

    def calls_to(self, method: str, path_contains: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and path_contains in c.path]

    def app(self) -> Starlette:
        routes = [
            Route(r.path, self._wrap(r.endpoint), methods=r.methods)
            for r in self.routes()  # type: ignore[arg-type]
        ]
        return Starlette(routes=routes)

    def _wrap(self, endpoint: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            body = await request.body()
            call = Call(request.method, request.url.path, dict(request.query_params), dict(request.headers), body)
            with self._lock:
                self.calls.append(call)
            if (refused := self.admit(request)) is not None:
                return refused  # nothing held, delayed or served
            with self._lock:
                self._in_flight += 1
                held = self.knobs.take_delay(request.method, request.url.path)
                hold = self.knobs.take_hold(request.method, request.url.path)
            try:
                if hold is not None:
                    await hold.until_released()
                if self.knobs.latency or held:
                    await asyncio.sleep(self.knobs.latency + held)
                failure = self.knobs.take_failure(request.method, request.url.path)
                if failure is not None:
                    headers = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
                    content = failure.body if failure.body is not None else self.error_body(failure.status)
                    return JSONResponse(content, status_code=failure.status, headers=headers)
                return await endpoint(request)
            finally:
                with self._lock:
                    self._in_flight -= 1

        return handler


class FakeServer:
    """Serve an ASGI app on a free loopback port in a thread; `url` is its base URL."""

    def __init__(self, app: Any, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: (certificate chain, key) to serve HTTPS, for a client that insists on TLS."""
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        certfile, keyfile = (str(tls[0]), str(tls[1])) if tls else (None, None)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self._server = QuickServer(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


F = TypeVar("F", bound=FakeApi)


@contextmanager
def serve(fake: F, suffix: str = "") -> Iterator[F]:
    """Serve `fake` on a free loopback port; `fake.url` is its base URL plus `suffix` (e.g. "/v1")."""
    with FakeServer(fake.app()) as server:
        fake.url = server.url + suffix
        try:
            yield fake
        finally:
            fake.close()
