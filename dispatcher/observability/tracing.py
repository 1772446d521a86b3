"""The dispatcher's traces: one per session, by the standard `OTEL_*` variables.

`configure()` (called once by `python -m dispatcher`) installs the SDK's exporter when the
variables ask for one (botchannel/telemetry.py reads them, for the bot host too); then FastAPI's
own telemetry makes each request's server span (`POST /start`, HTTP semantic conventions) and the
spans below are its children: `session.start`, `session.admission`, `session.launch` (a warm
claim or a cold launch, with the provider's calls as HTTP client spans) and `session.room`.
Without the variables the API's no-op tracer answers, and a session still gets a trace id of
its own (`session_trace`, marked sampled so an exporting bot keeps its spans): the start answer,
the session's timeline, its log lines and its bot's
`assign` carry it, so an operator can correlate them even before traces are exported.

A session's trace id is the one its first start was in; a replay of the same `Idempotency-Key`
answers that one (the timeline keeps it), its own request's trace is another. A client's own
`traceparent` never chooses it: the client's span is linked (dispatcher/observability/client_trace.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode, TraceFlags

from botchannel import telemetry
from dispatcher.observability.client_trace import ClientContextAsLink, client_links
from dispatcher.settings import SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

TRACER_NAME = "voicefleet.dispatcher"
SERVICE_NAME = "voicefleet-dispatcher"


def configure(env: Mapping[str, str], replica: str) -> bool:
    """Exports spans when the `OTEL_*` variables ask for it; a setting that cannot be honoured is
    a configuration error (the dispatcher refuses to start), never a silent no-op."""
    try:
        installed = telemetry.install(env, SERVICE_NAME, {"service.instance.id": replica}, through=_redacting)
        hint = telemetry.protocol_hint(env)
    except telemetry.TelemetryError as exc:
        raise SettingsError(str(exc)) from None
    if hint is not None:
        logging.getLogger("dispatcher.tracing").warning("tracing: %s", hint)
    if installed:  # request spans are made only then (FastAPI's telemetry), and only they read headers
        propagate.set_global_textmap(ClientContextAsLink())
    _exporting[:] = [installed]
    return installed


def _redacting(exporter: SpanExporter) -> SpanExporter:
    """Every span leaves with the secrets the logs mask masked (dispatcher/observability/span_redaction.py)."""
    from dispatcher.observability.span_redaction import RedactingExporter

    return RedactingExporter(exporter)


_exporting: list[bool] = [False]  # set once by `configure`


def exporting() -> bool:
    """Whether spans leave this process: when not, work done only to place a span (reading a
    session's trace from the store) is skipped."""
    return _exporting[0]


# A proxy: it follows a provider installed later (`configure`). Looked up once: each
# `get_tracer` reads the environment for a provider to load, a few µs a span.
_TRACER = trace.get_tracer(TRACER_NAME)


def tracer() -> trace.Tracer:
    return _TRACER


def _no_provider() -> bool:
    """Nothing installed a tracer provider (no `OTEL_*`): every span is the API's no-op, which only
    hands back the current span and makes it current again. The steps below then skip that work
    (a dozen context switches and generator frames a start) and keep the current span as it is.
    Only `configure` installs one here, so its answer is read, not the API's (which looks in
    `os.environ` at every call: 5 % of a start's CPU) — unless the environment names a provider
    for the API to load itself."""
    if _PROVIDER_FROM_ENVIRONMENT:
        return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return not _exporting[0]


_PROVIDER_FROM_ENVIRONMENT = OTEL_PYTHON_TRACER_PROVIDER in os.environ


@dataclass(frozen=True)
class SessionTrace:
    trace_id: str  # 32 lowercase hex digits, as backends show it
    traceparent: str  # what the session's bot continues it from


@contextlib.contextmanager
def session_trace(session_id: str, **attributes: Any) -> Iterator[SessionTrace]:
    """The `session.start` span, current for the block: the child of the request's span (whose trace
    is this deployment's, dispatcher/observability/client_trace.py), linked to the client's span when
    its request named one. Without an exporter there is no span, so a trace id is made up here
    (random) and made current the same way. It is marked sampled: a bot that exports (its own OTEL_*
    set, the dispatcher's not) records its spans under it rather than having its parent-based
    sampler drop them."""
    with contextlib.ExitStack() as stack:
        span = current if _no_provider() and isinstance(current := trace.get_current_span(), NonRecordingSpan) \
            else stack.enter_context(tracer().start_as_current_span(
                "session.start", links=client_links(),
                attributes={"voicefleet.session.id": session_id, **attributes}))
        context = span.get_span_context()
        if context.is_valid:
            yield _described(context)
            return
        made_up = SpanContext(secrets.randbits(128), secrets.randbits(64), is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(made_up)))
        try:
            yield _described(made_up)
        finally:
            otel_context.detach(token)


def _described(context: SpanContext) -> SessionTrace:
    # W3C's `traceparent` of a valid context, as `telemetry.traceparent` writes it (its propagator
    # builds a context and a carrier for the same string: a quarter of a start's tracing cost).
    trace_id = trace.format_trace_id(context.trace_id)
    return SessionTrace(trace_id, f"00-{trace_id}-{trace.format_span_id(context.span_id)}-{context.trace_flags:02x}")


@contextlib.contextmanager
def in_session(name: str, traceparent: str | None, **attributes: Any) -> Iterator[Span]:
    """A span of a request about a session that already exists (an offer, a dial-in update), in the
    session's own trace: the child of its `session.start` (`traceparent`, from its `requested`
    event), linked to the request's own span (a trace of its own) and to the client's span its
    `traceparent` named, if any. Without the session's
    `traceparent` (not exporting, or a session started before it was recorded), the request's child."""
    parent = telemetry.context_from(traceparent)
    if parent is None:
        with step(name, **attributes) as span:
            yield span
        return
    request = trace.get_current_span().get_span_context()
    links = ([Link(request)] if request.is_valid else []) + client_links()
    with tracer().start_as_current_span(name, context=parent, links=links, attributes=attributes) as span:
        yield span


def session_traceparent(events: list[dict[str, Any]]) -> str | None:
    """The `traceparent` a session's timeline recorded at its start (its `requested` event)."""
    for event in events:
        if event.get("event") == "requested" and isinstance(event.get("traceparent"), str):
            return str(event["traceparent"])
    return None


def current_trace_id() -> str | None:
    """The trace of the code running now (a log line's), if any."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


@contextlib.contextmanager
def step(name: str, **attributes: Any) -> Iterator[Span]:
    """One step of a start, as a child span of the current one."""
    if _no_provider() and isinstance(current := trace.get_current_span(), NonRecordingSpan):
        yield current  # what the no-op tracer would have made current: the current span itself
        return
    with tracer().start_as_current_span(name, attributes=attributes) as span:
        yield span


@contextlib.contextmanager
def http_call(method: str, url: str, *, path_shown: bool = True) -> Iterator[Span]:
    """An outbound HTTP call as a client span named per the semantic conventions (`POST`); the URL
    without its query string, which may carry a credential, and without its path where that may be
    one too (`path_shown=False`: a webhook URL's path is often its receiver's secret)."""
    if _no_provider() and isinstance(current := trace.get_current_span(), NonRecordingSpan):
        yield current  # as in `step`: no span, and no URL taken apart for one
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    where = f"{host}:{parts.port}" if parts.port else host  # never the userinfo of a URL
    attributes: dict[str, str | int] = {"http.request.method": method, "server.address": host,
                                        "url.full": f"{parts.scheme}://{where}{parts.path if path_shown else '/'}"}
    if parts.port:
        attributes["server.port"] = parts.port
    with tracer().start_as_current_span(method, kind=SpanKind.CLIENT, attributes=attributes,
                                        record_exception=False) as span:
        yield span


def answered(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        span.set_attribute("error.type", str(status))
        span.set_status(StatusCode.ERROR)


def failed(span: Span, code: str) -> None:
    span.set_attribute("error.type", code)
    span.set_status(StatusCode.ERROR)
