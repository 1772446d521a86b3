"""Traces as pipecat-examples' open-telemetry bots set them up: OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT.

voicefleet reads the protocol the way the specification defines it (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`,
then `OTEL_EXPORTER_OTLP_PROTOCOL`, `http/protobuf` unset), so one setting serves the dispatcher and
the bot; and a bot that exports OTLP through its own tracer provider carries voicefleet's spans too,
so each span reaches the collector once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from botchannel import telemetry
from tests.support.http_client import api_client
from tests.support.otlp_receiver import otlp_grpc_receiver, otlp_receiver
from tests.support.processes import run_dispatcher

ROOT = Path(__file__).resolve().parents[2]
JAEGER_SHAPED = ROOT / "tests" / "bots" / "jaeger_shaped.py"


@pytest.mark.parametrize(("env", "protocol"), [
    ({}, "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "grpc"),
])
def test_the_protocol_is_read_as_the_specification_defines_it(env: dict[str, str], protocol: str) -> None:
    assert telemetry.otlp_protocol(env) == protocol


@pytest.mark.parametrize(("env", "hinted"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}, True),  # the example's README, nothing else
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, False),
])
def test_a_grpc_port_left_at_the_http_default_is_said(env: dict[str, str], hinted: bool) -> None:
    hint = telemetry.protocol_hint(env)
    assert (hint is not None and "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in hint) is hinted, hint


def test_grpc_without_its_exporter_package_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)  # not installed
    with pytest.raises(telemetry.TelemetryError, match="needs opentelemetry-exporter-otlp-proto-grpc"):
        telemetry._otlp_exporter("grpc")


USERS_OTLP_PROVIDER = """
import os
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from botchannel import telemetry

provider = TracerProvider()  # as Pipecat's setup_tracing does with the exporter the bot file built
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
assert telemetry.install(os.environ, "voicefleet-bot")
with trace.get_tracer("t").start_as_current_span("users.span"):
    pass
telemetry.flush()
provider.force_flush()  # whatever the user's own processor still holds
os._exit(0)  # as the bot host ends (no atexit)
"""


def test_a_bots_own_otlp_export_carries_voicefleets_spans_and_each_span_leaves_once() -> None:
    with otlp_receiver() as (endpoint, received):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        done = subprocess.run([sys.executable, "-c", USERS_OTLP_PROVIDER], cwd=ROOT, capture_output=True, env=env,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        spans = received.wait_for(lambda s: len(s) >= 1, timeout=10)
        asyncio.run(asyncio.sleep(0.5))  # a second copy, if any, would be in flight
        assert [s.name for s in received.spans] == ["users.span"], spans


@pytest.mark.parametrize(("package", "protocol", "defers"), [
    ("grpc", "grpc", True), ("http", "http/protobuf", True),
    # A gRPC exporter where the variables name HTTP (a stack's 4318 endpoint): bound nowhere that
    # works, so voicefleet's goes beside it and the bot's spans still arrive.
    ("grpc", "http/protobuf", False), ("http", "grpc", False),
])
def test_a_bots_own_exporter_is_trusted_only_in_the_protocol_the_variables_name(
    package: str, protocol: telemetry.Protocol, defers: bool,
) -> None:
    import importlib

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{package}.trace_exporter").OTLPSpanExporter
    provider = TracerProvider()
    processor = BatchSpanProcessor(exporter(endpoint="http://127.0.0.1:9"))
    provider.add_span_processor(processor)
    try:
        assert telemetry.exports_otlp(provider, protocol) is defers
    finally:
        provider.shutdown()


@pytest.mark.slow  # a real dispatcher and a real bot importing Pipecat
async def test_one_grpc_setting_serves_the_dispatcher_and_a_jaeger_shaped_bot_each_span_once(tmp_path: Path) -> None:
    with otlp_grpc_receiver() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
               "OTEL_BSP_SCHEDULE_DELAY": "100", "ENABLE_TRACING": "true", "LOCAL_BOT_ENV": "ENABLE_TRACING",
               "BOT_FILE": str(JAEGER_SHAPED), "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0"}
        with run_dispatcher(tmp_path, env) as dispatcher:
            async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
                answer = await api.post("/start", json={"transport": "websocket", "body": {}})
                assert answer.status_code == 201, answer.text
                start = answer.json()
            async with connect(f"{start['wsUrl']}/{start['token']}", open_timeout=10) as call:
                spans = await received.arrived(lambda s: {"session.start", "bot.session", "conversation"}
                                               <= {x.name for x in s}, timeout=60, context=dispatcher.log)
                await call.close()
            await asyncio.sleep(1.0)  # the bot's exit flush: a second copy would have arrived by now
        log = dispatcher.log()
    spans = received.spans
    by_name = {span.name: span for span in spans}
    assert by_name["bot.session"].parent_span_id == by_name["session.start"].span_id  # one trace, both halves
    assert by_name["bot.session"].trace_id == by_name["conversation"].trace_id
    assert by_name["bot.session"].service == "pipecat-demo"  # the bot's provider carried voicefleet's span
    copies = Counter(span.span_id for span in spans)
    assert [name for name, span in by_name.items() if copies[span.span_id] != 1] == [], copies
    assert "Failed to export" not in log and "Traceback" not in log, log[-3000:]


def test_the_examples_endpoint_alone_is_said_at_start_up(tmp_path: Path) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "RESERVE_MIN_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        log = dispatcher.log()
    assert "port 4317, a collector's OTLP/gRPC port" in log and "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in log, log
