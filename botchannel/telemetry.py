"""OpenTelemetry by the standard variables, for both sides of the channel: one reading, one set-up.

The dispatcher and the bot host export traces when, and only when, the environment asks for it
the standard way: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set, `OTEL_SDK_DISABLED`
not `true`, `OTEL_TRACES_EXPORTER` `otlp` (the default) or `console`; the SDK reads the rest
itself. Unset, nothing is imported and nothing exported.

OTLP is spoken as `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL` say:
`http/protobuf` (the default, port 4318) or `grpc` (4317), which needs
`opentelemetry-exporter-otlp-proto-grpc` and is refused by name where it is not installed (the
dispatcher image leaves it out). A bot whose own tracer provider already exports OTLP in that
protocol keeps the export to itself, so each span leaves once. The trace context reaches the bot as
a W3C `traceparent` in its `assign`. Why each choice: docs/configuration.md ("Traces (OpenTelemetry)").
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported where used: a process that exports nothing never loads OpenTelemetry
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("voicefleet.telemetry")

Exporter = Literal["otlp", "console"]
Protocol = Literal["grpc", "http/protobuf"]
_installed: list[Any] = []  # the span processors this process added, or the bot's own provider (flushed at exit)


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
    otlp_protocol(env)
    return "otlp"


def otlp_protocol(env: Mapping[str, str]) -> Protocol:
    """The OTLP protocol the variables name (the signal's own first); `http/protobuf` unset."""
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() or "http/protobuf")
    if protocol not in ("grpc", "http/protobuf"):
        raise TelemetryError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: voicefleet exports OTLP as grpc or http/protobuf "
            "(OpenTelemetry's Python SDK has no http/json exporter)"
        )
    return "grpc" if protocol == "grpc" else "http/protobuf"


def protocol_hint(env: Mapping[str, str]) -> str | None:
    """A sentence when the endpoint is a collector's gRPC port (4317) but the protocol was left at
    its default, HTTP: every export would fail (pipecat-examples' README sets only the endpoint)."""
    if exporter_choice(env) != "otlp" or otlp_protocol(env) != "http/protobuf":
        return None
    if env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip() or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip():
        return None  # HTTP asked for by name: the port is the operator's
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    try:
        port = urlsplit(endpoint.strip()).port
    except ValueError:
        return None
    if port != 4317:
        return None
    return ("OTEL_EXPORTER_OTLP_ENDPOINT names port 4317, a collector's OTLP/gRPC port, and no protocol is set, "
            "so spans go as OTLP/HTTP and fail: set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, or use the collector's "
            "HTTP port (4318)")


def install(env: Mapping[str, str], default_service: str, attributes: Mapping[str, str] | None = None,
            console: IO[str] | None = None, through: Callable[[SpanExporter], SpanExporter] | None = None) -> bool:
    """Exports this process's spans as the variables ask; False when they ask for nothing.

    A tracer provider already installed (a user's bot that called Pipecat's `setup_tracing` at
    import) is kept. If it exports OTLP itself, it keeps that to itself (voicefleet's spans leave
    through it, once); otherwise it gets voicefleet's exporter beside its own.
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

    current = trace.get_tracer_provider()
    if exporter == "otlp" and isinstance(current, TracerProvider) and exports_otlp(current, otlp_protocol(env)):
        _installed.append(current)  # flushed at exit like ours: a session's last spans are in its batch
        return True
    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter(out=console or sys.stdout)  # the bot's stdout is its event contract
    else:
        span_exporter = _otlp_exporter(otlp_protocol(env))
    processor = BatchSpanProcessor(through(span_exporter) if through is not None else span_exporter)
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


def _otlp_exporter(protocol: Protocol) -> SpanExporter:
    """The SDK's OTLP exporter for `protocol`; endpoint, headers, timeout, compression (and, for
    gRPC, `insecure` from an `http://` endpoint) come from the variables, read by the SDK itself."""
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    except ImportError:
        raise TelemetryError(
            "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' needs opentelemetry-exporter-otlp-proto-grpc, which this "
            "environment lacks (the dispatcher image leaves it out): install it, or export http/protobuf to the "
            "collector's HTTP port (4318)"
        ) from None
    return GrpcExporter()


def exports_otlp(provider: TracerProvider, protocol: Protocol) -> bool:
    """Whether `provider` already sends its spans over OTLP in `protocol`, the one the variables
    name: its exporter then reads the same endpoint variables ours would (the examples pass
    `OTEL_EXPORTER_OTLP_ENDPOINT` on), so ours would be a second copy. One in another protocol is
    bound elsewhere, or nowhere (a gRPC exporter given a stack's HTTP endpoint), and a console or
    in-memory one is no collector's copy: ours goes beside those, so no span is lost."""
    package = "opentelemetry.exporter.otlp.proto." + ("grpc" if protocol == "grpc" else "http")
    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
    return any(type(getattr(processor, "span_exporter", None)).__module__.startswith(package)
               for processor in processors)


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
