"""A bot in pipecat-examples' open-telemetry/jaeger shape: at import, when ENABLE_TRACING is set, it
installs its own tracer provider through Pipecat's `setup_tracing`, exporting OTLP/gRPC to
OTEL_EXPORTER_OTLP_ENDPOINT (`insecure=True`, as the example). Its `bot` is traced.py's, beside it
(the bot's folder is on `sys.path`, as under Pipecat's runner): Pipecat's tracing on, one turn, then
it ends on its own. Nothing of voicefleet."""

import os

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from pipecat.utils.tracing.setup import setup_tracing
from traced import bot

if os.getenv("ENABLE_TRACING"):
    otlp_exporter = OTLPSpanExporter(endpoint=os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
                                     insecure=True)
    setup_tracing(service_name="pipecat-demo", exporter=otlp_exporter)

__all__ = ["bot"]
