"""OpenTelemetry by the standard variables, for both sides of the channel: one reading, one set-up.

The dispatcher and the bot host export traces when, and only when, the environment asks for it
the standard way: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set,
`OTEL_SDK_DISABLED` not `true`, `OTEL_TRACES_EXPORTER` `otlp` (the default) or `console`.
Everything else the SDK reads itself: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER`. Unset, nothing
is imported and nothing exported: the API's own no-op tracer answers every span (`opentelemetry-api`
comes with FastAPI on the dispatcher and with Pipecat in the bot).

OTLP is spoken over HTTP (`http/protobuf`, the specification's default): a collector's 4318 port.
`grpc` is refused with a clear message rather than half-supported (it would add grpcio, ~10 MB,
to every image).

The trace context travels to the bot as a W3C `traceparent` in its `assign`
(botchannel/contract.py), so a session is one trace across processes and machines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # imported where used: a process that exports nothing never loads OpenTelemetry
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("voicefleet.telemetry")

Exporter = Literal["otlp", "console"]
_installed: list[Any] = []  # the span processors this process added (flushed at exit)


class TelemetryError(ValueError):
    """An `OTEL_*` setting voicefleet cannot honour."""


def exporter_choice(env: Mapping[str, str]) -> Exporter | None:
    """Which exporter the standard variables ask for; None: none (the default)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = (env.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp").split(",")[0].strip()
    if chosen == "none":
        return None
    if chosen == "console":
        return "console"
    if chosen != "otlp":
        raise TelemetryError(f"OTEL_TRACES_EXPORTER={chosen!r}: voicefleet exports otlp, console or none")
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not endpoint.strip():
        return None
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() or "http/protobuf")
    if protocol != "http/protobuf":
        raise TelemetryError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: voicefleet exports OTLP over HTTP (http/protobuf); "
            "point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318)"
        )
    return "otlp"


def install(env: Mapping[str, str], default_service: str, attributes: Mapping[str, str] | None = None,
            console: IO[str] | None = None, through: Callable[[SpanExporter], SpanExporter] | None = None) -> bool:
    """Exports this process's spans as the variables ask; False when they ask for nothing.

    A tracer provider already installed (a user's bot that called Pipecat's `setup_tracing` at
    import) is kept and gets voicefleet's exporter beside its own: the bot's spans reach both.
    Raises `TelemetryError` for a setting that cannot be honoured, and `ImportError` when the SDK
    is not installed (a bot image whose project lacks it). `through`: what each span passes on its
    way to the exporter (the dispatcher masks secrets there)."""
    exporter = exporter_choice(env)
    if exporter is None:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter(out=console or sys.stdout)  # the bot's stdout is its event contract
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()  # endpoint, headers, timeout, compression: from the variables
    processor = BatchSpanProcessor(through(span_exporter) if through is not None else span_exporter)
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(processor)
    else:
        resource = Resource.create(dict(attributes or {}))
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: default_service}))  # OTEL_SERVICE_NAME wins
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
    _installed.append(processor)
    return True


def flush(timeout_seconds: float = 2.0) -> None:
    """Sends what is batched (a process about to exit); bounded, never raises."""
    for processor in _installed:
        try:
            processor.force_flush(int(timeout_seconds * 1000))
        except Exception as exc:  # telemetry never fails a session
            log.warning("telemetry: flushing spans failed: %s", type(exc).__name__)


def traceparent(ctx: Context | None = None) -> str | None:
    """The W3C `traceparent` of `ctx` (default: the current context), or None without a valid span."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=ctx)
    return carrier.get("traceparent")


def context_from(traceparent_value: str | None) -> Context | None:
    """The remote context a `traceparent` names; None when it is absent or malformed."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not traceparent_value:
        return None
    ctx = TraceContextTextMapPropagator().extract({"traceparent": traceparent_value})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None
