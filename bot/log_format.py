"""The bot host's log lines in JSON (`LOG_FORMAT=json`, as the dispatcher's): one object per line on
stderr, with the session's id and trace id, so a log pipeline joins a bot's lines to its session.

    {"time", "level", "logger", "message", "session_id", "trace_id", "machine_id"[, "exception"]}

`session_id` is the session this bot serves (null while a reserve bot waits for one), `trace_id`
the session's trace (bot/tracing.py) from its `assign` on, which carries it: a cold bot's first
lines (imports, its channel's dial) name its session but no trace yet. A bot line has `machine_id`
where a dispatcher line has `replica`: a bot belongs to no replica (its channel may be at any, and
move on a reconnect), while its machine id is what the provider's console, its log stream and the
session's timeline (`machine_id` on `claimed`/`machine_started`) name it by. Text stays the default.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC
from typing import Any

from bot import tracing
from botchannel.contract import MACHINE_ID_VARIABLE
from voicefleet_settings.read import setting_choice, setting_text


def wanted(env: dict[str, str] | os._Environ[str]) -> bool:
    return setting_choice(env, "LOG_FORMAT") == "json"


def json_sink(message: Any) -> None:
    """A loguru sink: the record as one JSON line on stderr."""
    record = message.record
    line = {
        "time": record["time"].astimezone(UTC).isoformat(timespec="milliseconds"),
        "level": record["level"].name.lower(),
        "logger": record["name"],
        "message": record["message"],
        "session_id": tracing.SESSION.session_id or setting_text(os.environ, "VOICEFLEET_SESSION_ID") or None,
        "trace_id": tracing.SESSION.trace_id,
        "machine_id": setting_text(os.environ, MACHINE_ID_VARIABLE) or os.environ.get("FLY_MACHINE_ID"),
    }
    if record["exception"] is not None:
        line["exception"] = "".join(_formatted(record["exception"]))
    try:
        sys.stderr.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our stderr any more: the session goes on


def _formatted(exception: Any) -> list[str]:
    import traceback

    return traceback.format_exception(exception.type, exception.value, exception.traceback)
