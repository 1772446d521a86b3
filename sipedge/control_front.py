"""The control API of an edge with several workers (docs/sip.md#capacity): one endpoint, on the
supervisor, in front of each worker's own control API (sipedge/control.py). A worker serves its
own on a fixed loopback port (worker_control_port + its index), told to the supervisor on its standard
output before it is ready, and takes only requests that present the control secret, as the edge's own does: a local
user who reaches that port gets nothing without it, and the SIP side never reaches it.
A transfer goes to every worker at once: those that hold no answered call of the session say 404
at once, and the first other answer (the holder's) is the edge's, the rest no longer waited for. A
call goes to a worker with a free slot: its session's worker, should it be asked again, else each in
turn from the one after the last that took one, past those that answer 503 (full, or not ready) or
cannot be reached. Every wait on a worker ends before the dispatcher's own (a frozen worker stalls
nothing else); a worker that was sent a call and did not answer may have placed it, so that session
stays with that worker (504), never tried on another, which could ring the callee twice. The edge's status
is every worker's asked at once and added up (sipedge/edge_status.py), a worker that does not answer
within `Waits.status` counted as such. While the edge drains (sipedge/drain.py) a new call is refused here
`503 edge_draining`; a retried one goes to its worker, and transfers to the workers, as ever."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from sipedge.config import Trunk
from sipedge.control_auth import control_app, error
from sipedge.drain import DRAINING, DRAINING_CODE
from sipedge.edge_status import workers_status
from sipedge.refusals import DEFAULT_RETRY_SECONDS

log = logging.getLogger("sipedge")

CONTROL_LINE = "sipedge: control on port "  # a worker's line to the supervisor, before "sipedge: ready"
CONNECT_SECONDS = 1.0  # loopback: a worker up accepts at once
REMEMBERED_CALLS = 1000  # as the worker's own control API: a retried hand-over comes within seconds
FORWARDED_HEADERS = ("Content-Type", "Retry-After")


@dataclass(frozen=True)
class Waits:
    """How long the front waits on its workers, each below what the dispatcher waits on the edge
    (dispatcher/phone/trunk_calls.py, sip_transfers.py: 5 s for a call or the trunks, 24 s for a
    transfer, 38 s for a warm one), so that the dispatcher hears the front's answer, never its own timeout."""

    calls: float = 4.0  # every worker a call is tried on, together; a worker answers at once
    # The holder answers within its own HAND_OVER_SECONDS (22 s, sipedge/call_transfer.py) or, warm, its
    # WARM_SECONDS (36 s, sipedge/warm_transfer.py).
    transfer: float = 23.0
    warm_transfer: float = 37.0
    status: float = 1.5  # the dispatcher's GET /status waits 2 s on an edge


@dataclass(frozen=True)
class Answer:
    """A worker's answer, as it is passed on."""

    status: int
    body: bytes
    headers: dict[str, str]

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, headers=self.headers)


@dataclass(frozen=True)
class NoAnswer:
    """A worker that gave no answer; `reached`: the request may have reached it (sent, then no answer in
    time, or the connection lost), rather than no connection made."""

    reached: bool


class ControlFront:
    def __init__(self, address: str, port: int, secret: str, workers: Callable[[], list[int | None]],
                 waits: Waits = Waits(), *, worker_calls: int = 0, trunks: Sequence[Trunk] = (),
                 front_refused: Callable[[], int] = lambda: 0, draining: Callable[[], bool] = lambda: False) -> None:
        """`workers()`: each worker's control port on loopback, None for one not up (starting again);
        `worker_calls`: each worker's call slots and `trunks` the edge's, for its status; `front_refused()`: the
        requests Kamailio refused itself over the last minute (sipedge/front_refusals.py), added to the workers';
        `draining()`: whether the edge drains."""
        self._front_refused = front_refused
        self._draining = draining
        self._up_since = time.time()
        self._worker_calls, self._trunks_configured = worker_calls, tuple(trunks)
        self._address, self._port = address, port
        self._secret = secret
        self._workers = workers
        self._waits = waits
        self._placed: dict[str, int] = {}  # session → the worker index that took its call, oldest first
        self._next = 0
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        return control_app(self._secret, self._trunks, self._calls, self._transfer, self._status)

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self._secret}"})
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._address, self._port).start()
        log.info("sipedge: control API on http://%s:%s, in front of the workers' own", self._address, self._port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    def _up(self) -> list[tuple[int, int]]:
        """The workers up now: (index, control port)."""
        return [(index, port) for index, port in enumerate(self._workers()) if port is not None]

    async def _ask(self, port: int, method: str, path: str, body: bytes | None, seconds: float) -> Answer | NoAnswer:
        """The worker's answer within `seconds`."""
        assert self._client is not None
        timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, CONNECT_SECONDS))
        try:
            async with self._client.request(method, f"http://127.0.0.1:{port}{path}", data=body, timeout=timeout,
                                            headers={"Content-Type": "application/json"}) as answer:
                kept = {name: answer.headers[name] for name in FORWARDED_HEADERS if name in answer.headers}
                return Answer(answer.status, await answer.read(), kept)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sipedge: the worker with control port %d did not answer %s %s within %.0f s: %r", port,
                        method, path, seconds, exc)
            return NoAnswer(reached=not isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError))

    async def _status(self, request: web.Request) -> web.Response:
        answers = await asyncio.gather(*(self._worker_status(port) for port in self._workers()))
        status = workers_status(answers, self._worker_calls, self._trunks_configured, self._up_since,
                                self._draining())
        status["refused_last_minute"] += self._front_refused()
        return web.json_response(status)

    async def _worker_status(self, port: int | None) -> dict[str, Any] | None:
        """A worker's own status; None for one not up, or that did not answer it in time."""
        if port is None:
            return None
        answer = await self._ask(port, "GET", "/status", None, self._waits.status)
        if not isinstance(answer, Answer) or answer.status != 200:
            return None
        try:
            body = json.loads(answer.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _trunks(self, request: web.Request) -> web.Response:
        deadline = asyncio.get_running_loop().time() + self._waits.calls
        for _, port in self._up():  # any worker's list is the edge's: a silent one passes it on to the next
            left = deadline - asyncio.get_running_loop().time()
            if left > 0 and isinstance(answer := await self._ask(port, "GET", "/trunks", None, left), Answer):
                return answer.response()
        return _not_ready()

    async def _transfer(self, request: web.Request) -> web.Response:
        body, path = await request.read(), request.raw_path  # as it came: the worker decodes it as this would
        seconds = self._waits.warm_transfer if _is_warm(body) else self._waits.transfer
        asked = [asyncio.create_task(self._ask(port, "POST", path, body, seconds)) for _, port in self._up()]
        nobody: Answer | None = None
        silent = False
        try:
            for next_answer in asyncio.as_completed(asked):
                answer = await next_answer
                if isinstance(answer, NoAnswer):
                    silent = silent or answer.reached
                elif answer.status != 404:
                    return answer.response()  # the holder's: the others hold nothing, and are not waited for
                else:
                    nobody = answer
        finally:
            for task in asked:
                task.cancel()
        if silent:  # a worker that did not answer may hold the call and be handing it over
            return error(504, "transfer_unanswered", "a worker of the edge did not answer the transfer in time: the "
                         "call may have been handed over; the edge's log says where it went")
        return nobody.response() if nobody is not None else _not_ready()  # the worker's own 404 names the session

    async def _calls(self, request: web.Request) -> web.Response:
        body = await request.read()
        session_id = _session_of(body)
        if self._draining() and (session_id is None or session_id not in self._placed):
            return error(503, DRAINING_CODE, DRAINING, DEFAULT_RETRY_SECONDS)
        up = self._up()
        if not up:
            return _not_ready()
        ports = dict(up)
        taken_by = self._placed.get(session_id) if session_id is not None else None
        if taken_by is not None:  # a retried hand-over: its worker alone says how it went
            if taken_by not in ports:
                return error(503, "call_worker_starting", "the edge's worker that has this session's call is "
                             "starting again; ask again with the same session_id", DEFAULT_RETRY_SECONDS)
            order = [taken_by]
        else:
            order = sorted(ports, key=lambda index: (index - self._next) % len(self._workers()))
        deadline = asyncio.get_running_loop().time() + self._waits.calls
        full: Answer | None = None
        for index in order:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            answer = await self._ask(ports[index], "POST", "/calls", body, left)
            if isinstance(answer, NoAnswer):
                if not answer.reached:
                    continue  # no connection: nothing was placed there
                if session_id is not None:
                    self._remember(session_id, index)  # it may place the call: no other worker will
                return error(504, "call_unanswered", "the edge's worker did not answer in time and may have "
                             "placed the call; ask again with the same session_id for its answer")
            if answer.status == 503:  # this worker's slots are taken (or it is not ready): the next
                full = answer
                continue
            if answer.status == 202 and session_id is not None:
                self._remember(session_id, index)
            return answer.response()
        return full.response() if full is not None else _not_ready()

    def _remember(self, session_id: str, index: int) -> None:
        self._placed[session_id] = index
        self._next = index + 1
        while len(self._placed) > REMEMBERED_CALLS:
            self._placed.pop(next(iter(self._placed)))


def _is_warm(body: bytes) -> bool:
    """Whether a transfer asks for a warm one (the worker checks the rest)."""
    try:
        return bool(json.loads(body).get("mode") == "warm")
    except (ValueError, AttributeError):
        return False


def _session_of(body: bytes) -> str | None:
    """The `session_id` of a call's hand-over (the worker checks the rest); None when there is none."""
    try:
        found = json.loads(body).get("session_id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _not_ready() -> web.Response:
    return error(503, "not_ready", "none of the edge's workers answers yet (starting, or starting again)",
                  DEFAULT_RETRY_SECONDS)
