"""The user's own Pipecat spans join the session's trace: the host runs `bot()` inside its session span."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from botchannel import telemetry
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


@pytest.mark.parametrize(("env", "chosen"), [
    ({}, None),  # unset: nothing exported
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE "}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
    ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, None),  # otlp, but to nowhere
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "otlp"),
])
def test_the_standard_variables_choose_the_exporter(env, chosen):
    assert telemetry.exporter_choice(env) == chosen


@pytest.mark.parametrize(("env", "message"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
     "grpc or http/protobuf .*no http/json exporter"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp, console or none"),
])
def test_what_cannot_be_honoured_is_refused_by_name(env, message):
    with pytest.raises(telemetry.TelemetryError, match=message):
        telemetry.exporter_choice(env)


USERS_PROVIDER = """
import os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from botchannel import telemetry

mine = InMemorySpanExporter()
provider = TracerProvider()  # as Pipecat's setup_tracing installs one, at the bot file's import
provider.add_span_processor(SimpleSpanProcessor(mine))
trace.set_tracer_provider(provider)
assert telemetry.install(os.environ, "voicefleet-bot")
assert trace.get_tracer_provider() is provider  # kept, not replaced
with trace.get_tracer("t").start_as_current_span("users.span"):
    pass
telemetry.flush()
print([s.name for s in mine.get_finished_spans()])
"""


def test_a_tracer_provider_the_users_bot_installed_is_kept_and_gets_voicefleets_exporter_too():
    with otlp_receiver() as (endpoint, received):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        done = subprocess.run([sys.executable, "-c", USERS_PROVIDER], cwd=ROOT, capture_output=True, env=env,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "['users.span']"  # the user's own exporter still has it
        received.wait_for(lambda s: [x.name for x in s] == ["users.span"], timeout=10)  # and the collector
