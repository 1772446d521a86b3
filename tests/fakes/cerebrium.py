"""A fake Cerebrium function-call API: what docs.cerebrium.ai documents of calling a deployed app.

`POST /v4/{project}/{app}/{function}` with `Authorization: Bearer <JWT>`: no or a wrong key is 401, a
key of another project 403, an unknown app (`apps`: the project's deployed apps, a test adds a
release's) or function (or a private `_name` one) 404. With
`?async=true` the call answers 202 `{"run_id"}` at once and the run goes on until the function
returns or the app's `response_grace_period` (`grace_seconds`) ends it; without, 200
`{run_id, run_time_ms, result}` once it returned. The error body's shape is undocumented: this
fake answers `{"message"}`, and the provider must not rely on it. There is no API to read or cancel
a run (none is documented), so there is none here: a test reads `runs` itself.

The function: `run` (None by default) is what the deployed `start_bot` does with its body; a test
sets it to start a real bot process (`bot_process`) that dials the dispatcher's channel, as the
team's function would. A run ends when that returns, when `end_run` ends it, or at the grace period.

A run starts after the call is answered, as Cerebrium documents ("new instances start within 3
seconds" once scaling triggers, docs.cerebrium.ai/cerebrium/scaling/scaling-apps): `start_seconds`
after the call (3 s by default), or when a test releases the starts it holds (`hold_starts`). A test
of a warm replica that takes the call at once sets `start_seconds = 0`: the function then runs
before the answer. `FakeRun.began` says when (None: not yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import IMAGE_PATH, FakeApi, Hold

PROJECT, APP, FUNCTION = "p-1a2b3c4d", "voicefleet-bot", "start_bot"
API_KEY = "eyJ.cerebrium-project-jwt.sig"  # noqa: S105 - a test value
OTHER_PROJECT_KEY = "eyJ.another-projects-jwt.sig"  # noqa: S105 - a test value
START_SECONDS = 3.0  # "new instances start within 3 seconds" (a cold replica; the app's own init comes after)


@dataclass
class FakeRun:
    run_id: str
    body: dict[str, Any]
    app: str = APP  # the app whose function was called
    started: float = field(default_factory=time.monotonic)  # the call accepted: the grace period runs from here
    began: float | None = None  # the function began (after `start_seconds`, or a held start's release)
    ended: str | None = None  # "returned", "grace_period", "lost"
    process: subprocess.Popen[bytes] | None = None


class FakeCerebrium(FakeApi):
    error_body = staticmethod(lambda status: {"message": f"injected {status}"})

    def __init__(self) -> None:
        super().__init__()
        self.project, self.app_name, self.functions = PROJECT, APP, {FUNCTION}
        self.apps = {APP}  # the project's deployed apps
        self.grace_seconds = 15 * 60.0  # response_grace_period's default
        self.runs: dict[str, FakeRun] = {}
        # What the function does with a run: a process to start (bot_process), or None (nothing runs).
        self.run: Callable[[FakeRun], subprocess.Popen[bytes] | None] | None = None
        self.start_seconds = START_SECONDS
        self._start_holds: list[Hold] = []
        self._starting: set[asyncio.Task[None]] = set()  # runs accepted, their function not begun
        self._lock = threading.Lock()

    @property
    def env(self) -> dict[str, str]:
        return {"CEREBRIUM_PROJECT": self.project, "CEREBRIUM_APP": self.app_name, "CEREBRIUM_API_KEY": API_KEY,
                "CEREBRIUM_API_URL": self.url}

    def routes(self) -> list[Route]:
        return [Route("/v4/{project}/{app}/{function}", self.call, methods=["POST"])]

    def of(self, session_id: str) -> list[FakeRun]:
        return [r for r in list(self.runs.values()) if r.body.get("session_id") == session_id]

    def live(self, session_id: str) -> int:
        self.sweep()
        return sum(1 for r in self.of(session_id) if r.ended is None)

    async def call(self, request: Request) -> Response:
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if key == OTHER_PROJECT_KEY:
            return JSONResponse({"message": "Forbidden"}, status_code=403)
        if key != API_KEY:
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        p = request.path_params
        if p["project"] != self.project or p["app"] not in self.apps or p["function"] not in self.functions \
                or p["function"].startswith("_"):
            return JSONResponse({"message": "Not Found"}, status_code=404)
        body = await request.json()
        run = FakeRun(str(uuid.uuid4()), body, p["app"])
        with self._lock:
            self.runs[run.run_id] = run
        hold = self._take_start_hold()
        if self.start_seconds == 0 and hold is None:  # a warm replica takes it at once
            self._begin(run)
        else:
            task = asyncio.get_running_loop().create_task(self._begin_later(run, hold))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)
        if request.query_params.get("async") == "true":
            return JSONResponse({"run_id": run.run_id}, status_code=202)
        while run.ended is None:  # a synchronous call waits for the function
            await asyncio.sleep(0.05)
            self.sweep()
        return JSONResponse({"run_id": run.run_id, "run_time_ms": 1.0, "result": None})

    def hold_starts(self, times: int) -> Hold:
        """Keep the next `times` runs from beginning until `release()` (their calls are answered)."""
        hold = Hold(times=times)
        with self._lock:
            self._start_holds.append(hold)
        return hold

    def _take_start_hold(self) -> Hold | None:
        with self._lock:
            hold = next((h for h in self._start_holds if h.times > 0), None)
            if hold is not None:
                hold.times -= 1
                hold.caught += 1
            return hold

    async def _begin_later(self, run: FakeRun, hold: Hold | None) -> None:
        await asyncio.sleep(self.start_seconds)
        if hold is not None:
            await hold.until_released()
        if run.ended is None:  # the grace period (or a test) may have ended it first
            self._begin(run)

    def _begin(self, run: FakeRun) -> None:
        run.began = time.monotonic()
        run.process = self.run(run) if self.run is not None else None

    def sweep(self) -> None:
        """Runs whose function returned, or whose grace period is over (their process killed)."""
        now = time.monotonic()
        for run in list(self.runs.values()):
            if run.ended is not None:
                continue
            if run.process is not None and run.process.poll() is not None:
                run.ended = "returned"
            elif now - run.started > self.grace_seconds:
                self.end_run(run, "grace_period")

    def end_run(self, run: FakeRun, why: str) -> None:
        """The platform ends a run (its grace period, or the run lost): its process is killed."""
        run.ended = why
        if run.process is not None and run.process.poll() is None:
            run.process.kill()
            run.process.wait(5)

    def close(self) -> None:
        with self._lock:
            for hold in self._start_holds:
                hold.release()
        for task in list(self._starting):
            with contextlib.suppress(RuntimeError):  # its loop already closed: nothing left to begin
                task.get_loop().call_soon_threadsafe(task.cancel)
        for run in self.runs.values():
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
                run.process.wait(5)


def bot_process(env: Mapping[str, str]) -> Callable[[FakeRun], subprocess.Popen[bytes]]:
    """The team's `start_bot` as docs/providers.md shows it: the voicefleet bot, its launch values in
    its environment, the body's values only (the room and token come over the channel). Its
    `os.environ` is the app container's: the image's `PATH` and `env` (the app's own variables and
    secrets), never the test's environment."""
    def start(run: FakeRun) -> subprocess.Popen[bytes]:
        b = run.body
        values = {"VOICEFLEET_SESSION_ID": b["session_id"], "BOT_CHANNEL_URL": b["channel_url"],
                  "BOT_CHANNEL_TOKEN": b["channel_token"], "MAX_SESSION_SECONDS": str(b["max_session_seconds"]),
                  "BOT_TRANSPORT": b["transport"]}
        return subprocess.Popen([sys.executable, "-m", "bot"], env={**IMAGE_PATH, **env, **values},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return start
