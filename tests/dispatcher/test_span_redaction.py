"""The span masking's own rules, on the OpenTelemetry SDK's real pipeline (a tracer provider, a simple
processor, its in-memory exporter behind the masking one): what the process test
(tests/dispatcher/test_tracing.py) cannot make FastAPI write, a credential header captured as an
attribute, a URL in an exception's message, a span whose name is a raw path."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatcher.observability.span_redaction import RedactingExporter

SECRET = "dialin-secret-0123456789abcdef0123456789"


def exported(record) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(memory)))
    record(provider.get_tracer("test"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_headers_urls_names_and_event_attributes_are_masked_and_the_rest_kept():
    def record(tracer) -> None:
        with tracer.start_as_current_span(f"POST /phone/daily/dialin/{SECRET}") as span:
            span.set_attribute("http.request.header.authorization", ("Bearer key-1",))
            span.set_attribute("http.request.header.x-twilio-signature", ("sig",))
            span.set_attribute("http.response.header.set-cookie", ("session=abc",))
            span.set_attribute("http.request.header.content-type", ("application/json",))
            span.set_attribute("url.full", f"https://calls.example.com/ws/twilio/{SECRET}?x=1")
            span.set_attribute("http.target", f"/ws/generic/voicefleet?token={SECRET}")
            span.set_attribute("url.query", f"a=1&token={SECRET}")
            span.set_attribute("http.response.status_code", 200)
            span.add_event("exception", {"exception.message": f"refused /phone/daily/dialin/{SECRET}"})
            span.add_event("kept", {"n": 1})

    [span] = exported(record)
    assert span.name == "POST /phone/daily/dialin/[redacted]"
    attributes = dict(span.attributes)
    assert attributes["http.request.header.authorization"] == ("[redacted]",)
    assert attributes["http.request.header.x-twilio-signature"] == ("[redacted]",)
    assert attributes["http.response.header.set-cookie"] == ("[redacted]",)
    assert attributes["http.request.header.content-type"] == ("application/json",)
    assert attributes["url.full"] == "https://calls.example.com/ws/twilio/[redacted]?x=1"
    assert attributes["http.target"] == "/ws/generic/voicefleet?token=[redacted]"
    assert attributes["url.query"] == "a=1&token=[redacted]"
    assert attributes["http.response.status_code"] == 200
    assert span.events[0].attributes["exception.message"] == "refused /phone/daily/dialin/[redacted]"
    assert dict(span.events[1].attributes) == {"n": 1}
    assert span.context.trace_id and span.status is not None and span.resource.attributes


def test_a_span_with_nothing_to_mask_is_exported_as_it_is_and_a_route_template_stays():
    def record(tracer) -> None:
        with tracer.start_as_current_span("session.start", attributes={"voicefleet.session.id": "s-1"}):
            pass
        with tracer.start_as_current_span("POST /phone/daily/dialin/{secret}") as span:
            span.set_attribute("http.route", "/phone/daily/dialin/{secret}")
            span.set_attribute("url.path", f"/phone/daily/dialin/{SECRET}")

    plain, routed = exported(record)
    assert plain.name == "session.start" and dict(plain.attributes) == {"voicefleet.session.id": "s-1"}
    assert routed.name == "POST /phone/daily/dialin/{secret}"
    assert routed.attributes["http.route"] == "/phone/daily/dialin/{secret}"
    assert routed.attributes["url.path"] == "/phone/daily/dialin/[redacted]"


def test_a_webhook_calls_span_names_the_receivers_host_never_its_path(monkeypatch) -> None:
    """A webhook URL's path is often its receiver's secret (Slack's, Zapier's): the deliverer's client
    spans show `scheme://host/` only; other calls keep their path."""
    from dispatcher.observability import tracing

    def record(tracer) -> None:
        monkeypatch.setattr(tracing, "tracer", lambda: tracer)
        monkeypatch.setattr(tracing, "_no_provider", lambda: False)
        with tracing.http_call("POST", f"https://hooks.example.com/services/{SECRET}", path_shown=False):
            pass
        with tracing.http_call("GET", "https://api.example.com/v1/apps/x?token=t"):
            pass

    hidden, shown = exported(record)
    assert hidden.attributes["url.full"] == "https://hooks.example.com/"
    assert shown.attributes["url.full"] == "https://api.example.com/v1/apps/x"


def test_the_webhook_deliverer_traces_no_path() -> None:
    from dispatcher.sessions.webhooks import LifecycleWebhooks, WebhookSettings

    settings = WebhookSettings.from_env({"WEBHOOK_URL": "https://hooks.example.com/x", "WEBHOOK_SECRET": "whsec_"
                                         + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    assert settings is not None
    webhooks = LifecycleWebhooks(settings, lambda session_id: None, None)  # type: ignore[arg-type]
    assert webhooks._client._path_traced is False
