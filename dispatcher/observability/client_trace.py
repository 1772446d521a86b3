"""A client's trace context is a link, never a parent.

FastAPI's request spans take their parent from the request's headers, by the global propagator:
with W3C Trace Context's, a client's `traceparent` on `POST /start` made the session's trace the
client's (any key that learnt another session's trace id, from a shared log or a support ticket,
could write into it, and its flags `00` switched the session's bot spans off). OpenTelemetry's
API documents links for this case: a public endpoint treats an incoming context as untrusted,
starts a new trace with its own sampling decision, and links the incoming context so the two
traces can be correlated (`Link`, "Public Endpoint"). So this propagator reads the
`traceparent` as W3C Trace Context does, but keeps it beside the context rather than as its span:
every request span is a root of this deployment's, sampled by its own sampler, and the session's
`session.start` (and a session's later requests, `in_session`) link the client's span. Baggage
and `tracestate` from a client are not taken in.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators import textmap
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_CLIENT = otel_context.create_key("voicefleet.client_trace")
_W3C = TraceContextTextMapPropagator()


class ClientContextAsLink(textmap.TextMapPropagator):
    """Extracts a W3C `traceparent` as the client's context (read by `client_links`), never as the
    parent of the spans that follow; injects as W3C Trace Context."""

    def extract(self, carrier: textmap.CarrierT, context: Context | None = None,
                getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter) -> Context:
        context = context if context is not None else Context()
        client = trace.get_current_span(_W3C.extract(carrier, Context(), getter)).get_span_context()
        return otel_context.set_value(_CLIENT, client, context) if client.is_valid else context

    def inject(self, carrier: textmap.CarrierT, context: Context | None = None,
               setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter) -> None:
        _W3C.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return _W3C.fields


def client_links() -> list[Link]:
    """A link to the span the current request's client named in its `traceparent`, if it named one."""
    client = otel_context.get_value(_CLIENT)
    return [Link(client, {"voicefleet.link": "client"})] if isinstance(client, trace.SpanContext) else []
