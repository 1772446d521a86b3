"""With no `OTEL_*` set (no tracer provider), a start's steps cost no span work: the session's made-up
trace stays current through them, unchanged, and its `traceparent` is the one W3C's propagator writes."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace

from botchannel import telemetry
from dispatcher.observability import tracing


def test_without_a_provider_the_steps_keep_the_sessions_context_as_it_is():
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # nothing installed one here
    with tracing.session_trace("s-1", **{"voicefleet.transport": "daily"}) as session:
        outer = otel_context.get_current()
        assert tracing.current_trace_id() == session.trace_id
        with tracing.step("session.launch") as span, tracing.http_call("POST", "https://api.example/v1/x?k=1"):
            # The same context object: no span was made current, so nothing to attach and detach.
            assert otel_context.get_current() is outer
            assert trace.format_trace_id(span.get_span_context().trace_id) == session.trace_id
        assert otel_context.get_current() is outer
    assert tracing.current_trace_id() is None


def test_a_made_up_traces_traceparent_is_the_propagators():
    with tracing.session_trace("s-2") as session:
        assert session.traceparent == telemetry.traceparent()
        assert session.traceparent.startswith(f"00-{session.trace_id}-") and session.traceparent.endswith("-01")
