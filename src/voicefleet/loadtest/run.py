"""The run: sessions placed on the plan's schedule, each its own task under a deadline, at most
`concurrency` at once, the progress line kept up, and every session cleaned up (hung up and
stopped) however the run ends, Ctrl-C included."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from voicefleet.loadtest.lag import longest_send
from voicefleet.loadtest.own_cost import OwnCost
from voicefleet.loadtest.plan import Plan
from voicefleet.loadtest.progress import Progress
from voicefleet.loadtest.record import DROPPED, SessionRecord
from voicefleet.loadtest.session import Call, run_session

STEP = 0.25  # how often the scheduler looks at the clock and the progress line is refreshed
KEEPALIVE_SECONDS = 2.0
SLACK = 60.0  # a session's deadline beyond what its steps may take: the stop and the timeline read
STOP_SECONDS = 30.0  # a session cut at its deadline: its hang-up and its DELETE


@dataclass
class LoadTest:
    plan: Plan
    call: Call
    progress: Progress
    http_timeout: float
    records: list[SessionRecord] = field(default_factory=list)  # every session due so far, in order
    done: list[SessionRecord] = field(default_factory=list)  # those whose outcome is final
    cost: OwnCost = field(default_factory=OwnCost)
    _active: set[asyncio.Task[None]] = field(default_factory=set)
    _in_flight: dict[int, tuple[SessionRecord, float]] = field(default_factory=dict)  # index → record, placed at

    @property
    def session_deadline(self) -> float:
        call = self.call
        turn = longest_send(call.speech.seconds) + call.listen_seconds + 1.0  # its lead, and a margin
        return call.ready_timeout + call.audio_timeout + call.turns * turn + SLACK

    @property
    def ends_within(self) -> float:
        """Seconds after the last session is placed by which the run has ended, whatever its sessions do:
        those still under way then are stopped."""
        return self.session_deadline + STOP_SECONDS

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # Idle connections closed well before the server's keep-alive (5 s by default) closes them: a
        # request sent on one the server is closing fails for nothing.
        limits = httpx.Limits(max_connections=2 * self.plan.concurrency + 10, keepalive_expiry=KEEPALIVE_SECONDS)
        lag = asyncio.create_task(self.cost.watch_loop())
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout, limits=limits) as http:
                began = loop.time()
                for index in range(self.plan.sessions):
                    due = self.plan.due(index)
                    while (left := began + due - loop.time()) > 0:
                        await asyncio.sleep(min(left, STEP))
                        self._show()
                    self._place(http, SessionRecord(index=index, due=round(due, 3), transport=self.call.transport))
                end = loop.time() + self.ends_within
                while self._active and loop.time() < end:
                    await asyncio.wait(set(self._active), timeout=STEP)
                    self._show()
        finally:
            for task in self._active:
                task.cancel()
            await asyncio.gather(*self._active, return_exceptions=True)
            lag.cancel()
            await asyncio.gather(lag, return_exceptions=True)
            self._show(final=True)

    def own_cost(self) -> dict[str, Any]:
        return self.cost.figures(sum(r.outcome != DROPPED for r in self.records))

    def _place(self, http: httpx.AsyncClient, record: SessionRecord) -> None:
        self.records.append(record)
        if len(self._active) >= self.plan.concurrency:
            record.outcome, record.code = DROPPED, "concurrency"
            record.message = f"due while {self.plan.concurrency} sessions were under way (--concurrency)"
            self.done.append(record)
            return
        self._in_flight[record.index] = (record, time.monotonic())
        task = asyncio.create_task(self._session(http, record), name=f"session-{record.index}")
        self._active.add(task)
        task.add_done_callback(self._active.discard)

    async def _session(self, http: httpx.AsyncClient, record: SessionRecord) -> None:
        try:
            async with asyncio.timeout(self.session_deadline):
                await run_session(self.call, http, record)
        except TimeoutError:
            record.fail("session_timeout", f"not done within {self.session_deadline:g} s")
        except asyncio.CancelledError:
            record.fail("interrupted", "the run was stopped while this session was under way")
            raise
        except Exception as error:  # a caller's own fault must cost its session, never the run
            record.fail("caller_error", f"{type(error).__name__}: {error}"[:300])
        finally:
            self._in_flight.pop(record.index, None)
            self.done.append(record)

    def _show(self, final: bool = False) -> None:
        now = time.monotonic()
        in_flight = [(record, now - placed_at) for record, placed_at in self._in_flight.values()]
        with contextlib.suppress(OSError):  # a closed stderr does not stop the run
            self.progress.show(self.done, in_flight, final=final)
