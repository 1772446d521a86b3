"""Keep credentials out of the spans the dispatcher exports, by the rules that keep them out of its logs.

A request's server span carries what the request log does: its `url.path` and `url.query` (FastAPI's
telemetry, HTTP semantic conventions), and `/phone/daily/dialin/{secret}` puts a reusable start
credential in the path; a carrier's `/ws/...` path and `?token=` a one-time one. Spans go to a
collector, often another party's: each span is masked on its way out with the one set of rules
the logs use (dispatcher/observability/log_redaction.py): its name, every string attribute (a
path, a query, a full URL, an exception's message), its events' attributes, and an
`http.request.header.*` / `http.response.header.*` attribute named after a credential header.
A route's template (`http.route`, and a name that is the method and it) is kept as it is:
`/phone/daily/dialin/{secret}` names the route, not the secret.
Masking at the exporter sees each span whole, attributes set after its start included; a span with
nothing to mask is exported as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from dispatcher.observability.log_redaction import MASK, SECRET_HEADERS, mask_secret_paths

ROUTE = "http.route"  # the matched route's template (`{secret}`), by the semantic conventions never a request's value
_HEADER_PREFIXES = ("http.request.header.", "http.response.header.")
_SECRET_RESPONSE_HEADERS = frozenset({"set-cookie"})


class RedactingExporter(SpanExporter):
    """Exports through `inner` what `redacted` leaves of each span."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def redacted(span: ReadableSpan) -> ReadableSpan:
    """`span`, or a copy of it with every secret the log rules know masked."""
    route = (span.attributes or {}).get(ROUTE)
    templated = isinstance(route, str) and span.name.endswith(f" {route}")  # `POST /phone/daily/dialin/{secret}`
    name = span.name if templated else mask_secret_paths(span.name)
    attributes = _masked(span.attributes)
    events = [Event(e.name, masked, e.timestamp) if (masked := _masked(e.attributes)) is not None else e
              for e in span.events]
    events_masked = any(a is not b for a, b in zip(events, span.events, strict=True))
    if name == span.name and attributes is None and not events_masked:
        return span
    return ReadableSpan(
        name=name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=span.attributes if attributes is None else attributes,
        events=events if events_masked else span.events,  # (kept as they were, with their dropped count)
        links=span.links, kind=span.kind, status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _masked(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The attributes with their secrets masked; None when none was found."""
    if not attributes:
        return None
    masked = {key: _value(key, value) for key, value in attributes.items()}
    return masked if any(masked[key] != value for key, value in attributes.items()) else None


def _value(key: str, value: Any) -> Any:
    if key == ROUTE:
        return value
    header = next((key[len(p):] for p in _HEADER_PREFIXES if key.startswith(p)), None)
    if header is not None and header.replace("_", "-") in SECRET_HEADERS | _SECRET_RESPONSE_HEADERS:
        return tuple(MASK for _ in value) if isinstance(value, Sequence) and not isinstance(value, str) else MASK
    if isinstance(value, str):
        return _text(key, value)
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        texts = tuple(_text(key, v) for v in value)
        return value if list(texts) == list(value) else texts
    return value


def _text(key: str, text: str) -> str:
    if key.endswith("url.query"):  # a query without its `?`, which the log rule's parameter starts after
        return mask_secret_paths("?" + text)[1:]
    return mask_secret_paths(text)
