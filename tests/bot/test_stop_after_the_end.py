"""A stop signal that reaches a bot after its session ended does not cut its way out short.

The dispatcher stops a session's machine when the call or peer is gone, which is often the moment
the bot ends by itself: its SIGTERM then lands while the bot sends its `ended` report and flushes
the session's spans. Here a real process ends a session as the host does (the lifecycle's signal
handling, the session's span in the trace it was assigned), is signalled after the end, and must
still export `bot.session` and exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.otlp_receiver import otlp_receiver

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

SESSION_THEN_SIGTERM = f"""
import asyncio, os, signal
from bot import tracing
from bot.lifecycle import EndReason, SessionLifecycle
from botchannel.contract import Assignment

async def session() -> None:
    lifecycle = SessionLifecycle()
    with lifecycle.signals_end_session():
        tracing.SESSION.assigned(Assignment("0" * 24, 60, traceparent="00-{TRACE_ID}-00f067aa0ba902b7-01"))
        lifecycle.end(EndReason.PIPELINE_FINISHED)
        tracing.SESSION.reported("ended", {{"reason": "pipeline_finished", "exit_code": 0}})
    os.kill(os.getpid(), signal.SIGTERM)  # the dispatcher's stop, as the session's teardown runs
    await asyncio.sleep(0.2)  # the teardown goes on (a signal's Python handler runs at once)

tracing.configure()
asyncio.run(session())
tracing.flush()  # as bot/__main__.py does before the process goes
print("flushed")
"""


def test_a_sigterm_after_the_session_ended_still_lets_the_bot_flush_its_spans_and_exit_0() -> None:
    with otlp_receiver() as (endpoint, received):
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", SESSION_THEN_SIGTERM], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "flushed"
        spans = received.wait_for(lambda s: any(x.name == "bot.session" for x in s), timeout=10)
    assert [span.trace_id for span in spans if span.name == "bot.session"] == [TRACE_ID]


ENDED_THEN_STUCK = """
import asyncio, os, signal, sys, time
import bot.lifecycle
from bot.lifecycle import EndReason, SessionLifecycle

bot.lifecycle.EXIT_DEADLINE_SECONDS = 1

async def session() -> None:
    lifecycle = SessionLifecycle()
    with lifecycle.signals_end_session():
        lifecycle.end(EndReason.PIPELINE_FINISHED)

asyncio.run(session())
for _ in range(int(sys.argv[1])):
    os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)  # a way out that never ends (a collector that never answers the spans' flush, say)
print("outlived its stop")
"""


def test_a_bot_stuck_on_its_way_out_after_a_stop_is_ended_by_the_exit_deadline() -> None:
    # A dead dispatcher sends one SIGTERM (the parent-death signal), and nothing follows it.
    done = subprocess.run([sys.executable, "-c", ENDED_THEN_STUCK, "1"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == -signal.SIGALRM and "outlived" not in done.stdout, done.stderr[-2000:]


def test_a_second_stop_signal_after_the_end_acts_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", ENDED_THEN_STUCK, "2"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == -signal.SIGTERM, done.stderr[-2000:]
