"""The control API of an edge with several workers (docs/sip.md#capacity): one endpoint, on the
supervisor, in front of each worker's own control API (sipedge/control.py). A worker serves its
own on a loopback port the kernel picks, told to the supervisor on its standard output before it
is ready, and takes only requests that present the control secret, as the edge's own does: a local
user who reaches that port gets nothing without it, and the SIP side never reaches it.
A transfer goes to every worker at once: those that hold no answered call of the session say 404
at once, and the one that holds it answers as one process does. A call goes to a worker with a
free slot: its session's worker, should it be asked again, else each in turn from the one after
the last that took one, past those that answer 503 (full, or not ready)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import aiohttp
from aiohttp import web

from sipedge.control_auth import control_app, error
from sipedge.refusals import DEFAULT_RETRY_SECONDS

log = logging.getLogger("sipedge")

CONTROL_LINE = "sipedge: control on port "  # a worker's line to the supervisor, before "sipedge: ready"
CONNECT_SECONDS = 2.0
# A transfer's answer comes once the person answered or refused, a REFER's NOTIFYs included: minutes at most.
ANSWER_SECONDS = 600.0
REMEMBERED_CALLS = 1000  # as the worker's own control API: a retried hand-over comes within seconds
FORWARDED_HEADERS = ("Content-Type", "Retry-After")


class Answer:
    """A worker's answer, as it is passed on."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self.body, self.headers = status, body, headers

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, headers=self.headers)


class ControlFront:
    def __init__(self, address: str, port: int, secret: str, workers: Callable[[], list[int | None]]) -> None:
        """`workers()`: each worker's control port on loopback, None for one not up (starting again)."""
        self._address, self._port = address, port
        self._secret = secret
        self._workers = workers
        self._placed: dict[str, int] = {}  # session → the worker index that took its call, oldest first
        self._next = 0
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        return control_app(self._secret, self._trunks, self._calls, self._transfer)

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=ANSWER_SECONDS, sock_connect=CONNECT_SECONDS)
        self._client = aiohttp.ClientSession(timeout=timeout, headers={"Authorization": f"Bearer {self._secret}"})
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

    async def _ask(self, port: int, method: str, path: str, body: bytes | None) -> Answer | None:
        """The worker's answer; None when it gave none (not up, or gone while answering)."""
        assert self._client is not None
        try:
            async with self._client.request(method, f"http://127.0.0.1:{port}{path}", data=body,
                                            headers={"Content-Type": "application/json"}) as answer:
                kept = {name: answer.headers[name] for name in FORWARDED_HEADERS if name in answer.headers}
                return Answer(answer.status, await answer.read(), kept)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sipedge: the worker with control port %d did not answer %s %s: %r", port, method, path, exc)
            return None

    async def _trunks(self, request: web.Request) -> web.Response:
        for _, port in self._up():
            if (answer := await self._ask(port, "GET", "/trunks", None)) is not None:
                return answer.response()
        return _not_ready()

    async def _transfer(self, request: web.Request) -> web.Response:
        body, path = await request.read(), request.raw_path  # as it came: the worker decodes it as this would
        answers = await asyncio.gather(*(self._ask(port, "POST", path, body) for _, port in self._up()))
        heard = [answer for answer in answers if answer is not None]
        held = [answer for answer in heard if answer.status != 404]
        if held:
            return held[0].response()
        if heard:
            return heard[0].response()  # no worker holds it: the worker's own 404, naming the session
        return _not_ready()

    async def _calls(self, request: web.Request) -> web.Response:
        body = await request.read()
        session_id = _session_of(body)
        up = self._up()
        if not up:
            return _not_ready()
        taken_by = self._placed.get(session_id) if session_id is not None else None
        ports = dict(up)
        if taken_by is not None and taken_by in ports:  # a retried hand-over: its worker says 202 again
            order = [taken_by]
        else:
            order = sorted(ports, key=lambda index: (index - self._next) % len(self._workers()))
        full: Answer | None = None
        for index in order:
            answer = await self._ask(ports[index], "POST", "/calls", body)
            if answer is None:
                continue
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
