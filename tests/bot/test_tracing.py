"""The user's own Pipecat spans join the session's trace: the host runs `bot()` inside its session span."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.otlp_receiver import otlp_receiver

ROOT = Path(__file__).resolve().parents[2]
TRACED_BOT = ROOT / "tests" / "bots" / "traced.py"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"  # the dispatcher's session.start span, sampled


def test_a_bot_that_enables_pipecats_tracing_has_its_spans_in_the_sessions_trace():
    with otlp_receiver() as (endpoint, received):
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "PYTHONPATH": str(ROOT)}
        # Its pipeline runs through and ends at once: well inside Pipecat's 20 s wait for a StartFrame
        # that never reaches the pipeline's end.
        subprocess.run([sys.executable, str(Path(__file__).with_name("traced_session.py")), str(TRACED_BOT),
                        TRACEPARENT], env=env, check=True, timeout=15, cwd=ROOT)
        spans = received.wait_for(lambda s: {"bot.session", "conversation", "turn"} <= {x.name for x in s},
                                  timeout=10)
    by_name = {span.name: span for span in spans}
    assert {span.trace_id for span in spans} == {TRACE_ID}
    assert by_name["bot.session"].parent_span_id == "00f067aa0ba902b7"
    # Pipecat's conversation span (the user's file asked for it, knowing nothing of voicefleet).
    assert by_name["conversation"].parent_span_id == by_name["bot.session"].span_id
    assert by_name["conversation"].attributes["conversation.id"] == "traced-1"
    # ... and its turn (the first starts with the pipeline), a child of the conversation.
    assert by_name["turn"].parent_span_id == by_name["conversation"].span_id
