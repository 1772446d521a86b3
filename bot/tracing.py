"""The bot host's spans: its one session, in the trace the dispatcher started it in.

With the standard `OTEL_*` variables set (botchannel/telemetry.py reads them, as the dispatcher
does), the host exports, under the `traceparent` its `assign` carried:

    bot.session        assignment → ended (its reason and exit code; an error status when it failed)
      bot.connect      assignment → joined (the peer connected / the bot is in its room)
      bot.first_audio  joined → the caller hears the bot's first audio

and a fatal pipeline error as an event on `bot.session`. The user's `bot()` runs with
`bot.session` as its current span, so when the user's bot enables Pipecat's tracing
(`PipelineTask(..., enable_tracing=True)`), its conversation, turn and service spans join the same
trace, the user's file unchanged. A tracer provider the bot file installed at import (Pipecat's
`setup_tracing`) is kept: one that exports OTLP itself carries voicefleet's spans too (each span
leaves once), any other gets voicefleet's exporter beside the user's.

Unset, nothing is imported and nothing exported. A bot image whose project lacks the SDK
(`opentelemetry-sdk`, `opentelemetry-exporter-otlp-proto-http`) logs it once and serves untraced.
One session per process: the module holds it, as bot/watch.py holds its watch.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from botchannel.contract import Assignment

SERVICE_NAME = "voicefleet-bot"
_enabled = False


def configure() -> None:
    """After the user's bot file is imported (its own provider, if any, is kept)."""
    global _enabled
    from loguru import logger  # not at import: `python -m bot --help` imports no logging library

    try:
        from botchannel import telemetry

        _enabled = telemetry.install(os.environ, SERVICE_NAME, console=sys.stderr)
        hint = telemetry.protocol_hint(os.environ) if _enabled else None
        if hint is not None:
            logger.warning(f"tracing: {hint}")
    except ImportError as exc:
        logger.warning(f"OTEL_* is set but this bot's environment lacks OpenTelemetry's SDK ({exc.name}): no traces")
    except ValueError as exc:  # TelemetryError: a setting that cannot be honoured
        logger.warning(f"tracing off: {exc}")


def flush() -> None:
    if _enabled:
        from botchannel import telemetry

        telemetry.flush()


async def flush_ended_session(timeout_seconds: float = 2.0) -> None:
    """The session's spans, sent as it ends and before the bot hangs up on its dispatcher.

    The dispatcher stops the machine once the call or channel is gone, and a stop leaves the
    process a few seconds (`LOCAL_STOP_GRACE_SECONDS`, a platform's stop timeout) that its
    teardown would otherwise spend before the exit's flush: on a busy machine the session's spans
    were lost with the process. Off the event loop (the SDK's flush blocks on the export) and
    bounded; the exit's flush still sends whatever comes after."""
    if not _enabled:
        return
    import asyncio

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.to_thread(flush), timeout_seconds)


class SessionSpans:
    def __init__(self) -> None:
        self._spans: dict[str, Any] = {}
        self._context: Any = None
        self.session_id: str | None = None
        self.trace_id: str | None = None  # the session's, when it came with one (log lines carry it)

    def assigned(self, assignment: Assignment) -> None:
        self.session_id = assignment.session_id
        fields = assignment.traceparent.split("-") if assignment.traceparent else []
        self.trace_id = fields[1] if len(fields) == 4 and len(fields[1]) == 32 else None
        if not _enabled:
            return
        from opentelemetry import trace

        from botchannel import telemetry

        tracer = trace.get_tracer("voicefleet.bot")
        parent = telemetry.context_from(assignment.traceparent)
        session = tracer.start_span("bot.session", context=parent, attributes={
            "voicefleet.session.id": assignment.session_id, "voicefleet.transport": assignment.transport})
        self._context = trace.set_span_in_context(session)
        self._spans = {"session": session, "connect": tracer.start_span("bot.connect", context=self._context)}

    def reported(self, event: str, fields: dict[str, Any]) -> None:
        """Each report the host sends its dispatcher is also a step of the session's trace."""
        if not self._spans:
            return
        from opentelemetry import trace
        from opentelemetry.trace import StatusCode

        session = self._spans["session"]
        if event == "joined" and "connect" in self._spans:
            self._spans.pop("connect").end()
            self._spans["first_audio"] = trace.get_tracer("voicefleet.bot").start_span(
                "bot.first_audio", context=self._context)
        elif event == "first_audio" and "first_audio" in self._spans:
            self._spans.pop("first_audio").end()
        elif event == "error":
            session.add_event("pipeline error", {"voicefleet.detail": str(fields.get("detail") or "")})
        elif event == "ended":
            for name in ("connect", "first_audio"):
                if name in self._spans:  # never reached: the session ended first
                    self._spans[name].set_status(StatusCode.ERROR, "the session ended first")
                    self._spans.pop(name).end()
            session.set_attribute("voicefleet.end.reason", str(fields.get("reason")))
            exit_code = fields.get("exit_code")
            if isinstance(exit_code, int):
                session.set_attribute("voicefleet.exit_code", exit_code)
                if exit_code != 0:
                    session.set_status(StatusCode.ERROR, str(fields.get("detail") or fields.get("reason")))
            self._spans.pop("session").end()
        else:
            session.add_event(event)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """The user's `bot()` runs inside the session's span (Pipecat's spans become its children)."""
        if self._context is None:
            yield
            return
        from opentelemetry import context

        token = context.attach(self._context)
        try:
            yield
        finally:
            context.detach(token)


SESSION = SessionSpans()  # the process's one session
