"""What a dispatcher log line looks like: text (the local default) or JSON lines (`LOG_FORMAT=json`).

A JSON line is one object: `time` (ISO 8601, UTC), `level`, `logger`, `message`, and on every line
`replica`, `session_id` (the session the code that logged was working for, when it was: a start,
a session's bot on the channel, a local bot's forwarded stderr), `trace_id` (its trace,
dispatcher/observability/tracing.py) and `release` (the session's release, docs/releases.md), `null`
when there is none; an exception's traceback as `exception`. A log pipeline (CloudWatch Logs Insights,
Cloud Logging, Loki) then filters one session's lines, or one release's, across replicas and joins
them to its trace. uvicorn's own lines go the same way.

A line about a session carries its trace and release even where no span of it is current (its bot's
channel connection, a local bot's watcher, its forwarded stderr): this replica remembers each
session's trace id and release (`KNOWN_SESSIONS`, bounded, the oldest forgotten first) from the
moment the session's timeline names them here, at its start or when this replica reads its
timeline (an offer does).

The credential filters (dispatcher/observability/log_redaction.py) run before either format: JSON changes how a
line is written, not what it may contain.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime

from dispatcher.observability.tracing import current_trace_id
from voicefleet_settings.model import ENUM
from voicefleet_settings.read import entry

LOG_FORMATS = entry("LOG_FORMAT", ENUM).choices
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The session the running code works for, and its release (contextvars: each request and task has its own).
SESSION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("voicefleet_session_id", default=None)
RELEASE: contextvars.ContextVar[str | None] = contextvars.ContextVar("voicefleet_release", default=None)


@contextlib.contextmanager
def working_for(session_id: str, release: str | None = None) -> Iterator[None]:
    """The block's log lines are `session_id`'s (of `release`, where the caller knows it)."""
    token, release_token = SESSION_ID.set(session_id), RELEASE.set(release)
    try:
        yield
    finally:
        SESSION_ID.reset(token)
        RELEASE.reset(release_token)


class KnownSessions:
    """Session id → its trace id and release, the latest `limit` sessions this replica saw (a few MB at most)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._known: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._lock = threading.Lock()  # log records come from threads too (uvicorn, executors)

    def remember(self, session_id: str, trace_id: str | None, release: str | None) -> None:
        with self._lock:
            known_trace, known_release = self._known.get(session_id, (None, None))
            self._known[session_id] = (trace_id or known_trace, release or known_release)
            self._known.move_to_end(session_id)
            while len(self._known) > self._limit:
                self._known.popitem(last=False)

    def trace_of(self, session_id: str | None) -> str | None:
        return self._of(session_id)[0]

    def release_of(self, session_id: str | None) -> str | None:
        return self._of(session_id)[1]

    def _of(self, session_id: str | None) -> tuple[str | None, str | None]:
        if session_id is None:
            return None, None
        with self._lock:
            return self._known.get(session_id, (None, None))


KNOWN_SESSIONS = KnownSessions()


class SessionFields(logging.Filter):
    """Puts `session_id`, `trace_id`, `release` and `replica` on every record (a record may bring its own session)."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica

    def filter(self, record: logging.LogRecord) -> bool:
        session_id = getattr(record, "session_id", None)
        working = session_id is None or session_id == SESSION_ID.get()
        if session_id is None:
            record.session_id = session_id = SESSION_ID.get()
        if getattr(record, "trace_id", None) is None:
            # The session's own trace first: the current span may be another's (a bot's channel
            # connection is a request of its own).
            record.trace_id = KNOWN_SESSIONS.trace_of(session_id) or current_trace_id()
        if getattr(record, "release", None) is None:
            # A start knows its release before its timeline names it (its first lines).
            record.release = KNOWN_SESSIONS.release_of(session_id) or (RELEASE.get() if working else None)
        record.replica = self.replica
        return True


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "replica": getattr(record, "replica", None),
            "session_id": getattr(record, "session_id", None),
            "trace_id": getattr(record, "trace_id", None),
            "release": getattr(record, "release", None),
        }
        machine_id = getattr(record, "machine_id", None)  # a local bot's forwarded line: its machine
        if machine_id:
            line["machine_id"] = machine_id
        bot_exception = getattr(record, "bot_exception", None)  # ... and its traceback, from its JSON line
        if record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)  # masked by a filter
        elif bot_exception:
            line["exception"] = bot_exception
        return json.dumps(line, ensure_ascii=False, default=str)


def install(level: str, chosen: str, replica: str) -> SessionFields:
    """The root handler, in the chosen format, with the session's fields on every record (its
    `replica` can be named later, once the store has)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    fields = SessionFields(replica)
    handler.addFilter(fields)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    return fields
