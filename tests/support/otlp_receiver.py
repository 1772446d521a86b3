"""A test OTLP/HTTP receiver: what a collector's 4318 port would get, decoded with the official protos.

It accepts `POST /v1/traces` (protobuf, gzip or not), answers 200 with an empty
`ExportTraceServiceResponse`, and keeps every span with its resource's `service.name`. Its gRPC
twin (`otlp_grpc_receiver`) is a collector's 4317 port: the TraceService `Export` call.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.threaded_http import serving
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until, within


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    status_code: int  # 0 unset, 1 ok, 2 error
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each span it links to
    trace_state: str = ""  # W3C `tracestate`
    received_at: float = 0.0  # wall-clock time its export reached the receiver


class Receiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        now = time.time()
        found = []
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    links = tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links)
                    found.append(ReceivedSpan(service, span.name, span.trace_id.hex(), span.span_id.hex(),
                                              span.parent_span_id.hex(), attributes, span.status.code, links,
                                              span.trace_state, now))
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = DEFAULT_TIMEOUT,
                 context: Callable[[], str] | None = None) -> list[ReceivedSpan]:
        """Blocks until `predicate` holds; for a test with nothing else on its thread (see `arrived`).
        `context`: what the failure should also show (a dispatcher's log, with its bots' lines)."""
        met = wait_until(lambda: self._matching(predicate), "the spans expected", timeout=timeout,
                         detail=lambda: self._said(context))
        assert met is not None  # wait_until returns a truthy value or fails
        return met[0]

    async def arrived(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = DEFAULT_TIMEOUT,
                      context: Callable[[], str] | None = None) -> list[ReceivedSpan]:
        """`wait_for` for an async test: its event loop keeps running meanwhile, so a connection the
        test holds open still answers its peer's pings (a blocked loop lets the server drop the call)."""
        met = await within(lambda: self._matching(predicate), timeout)
        if met is None:
            raise AssertionError(f"timed out waiting for the spans expected\n{self._said(context)}")
        return met[0]

    def _matching(self, predicate: Callable[[list[ReceivedSpan]], bool]) -> tuple[list[ReceivedSpan]] | None:
        with self._lock:
            spans = list(self.spans)
        return (spans,) if predicate(spans) else None  # a tuple: truthy even when the list is empty

    def _said(self, context: Callable[[], str] | None) -> str:
        with self._lock:
            spans = list(self.spans)
        return (f"the receiver has {len(spans)} spans: "
                + ", ".join(f"{s.service}/{s.name}/{s.trace_id[:8]}" for s in spans)
                + (f"\n{context()}" if context is not None else ""))


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Receiver]]:
    """(the endpoint to put in OTEL_EXPORTER_OTLP_ENDPOINT, what it received)."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
                self.send_response(404)
                self.end_headers()
                return
            receiver.take(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, receiver


@contextmanager
def otlp_grpc_receiver() -> Iterator[tuple[str, Receiver]]:
    """(the `http://` endpoint an OTLP/gRPC exporter is given, what it received)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    receiver = Receiver()

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: ExportTraceServiceRequest, context: object) -> ExportTraceServiceResponse:  # noqa: N802
            receiver.take(request.SerializeToString())
            return ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", receiver
    finally:
        server.stop(0)


def main() -> None:
    """`python -m tests.support.otlp_receiver PORT`: a receiver in a process of its own (a bench must
    not measure the receiver's decoding in its own interpreter); prints the spans decoded at SIGTERM."""
    import signal
    import sys

    receiver = Receiver()
    port = int(sys.argv[1])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            receiver.take(gzip.decompress(body) if self.headers.get("content-encoding") == "gzip" else body)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    print(len(receiver.spans), flush=True)


if __name__ == "__main__":
    main()
