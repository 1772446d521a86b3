"""What one line of a local bot's stderr says: its level, its message and, for a JSON line, the
machine and traceback it names.

The bot logs through loguru, as text (`<time> | LEVEL    | ...`, the host's format and loguru's
default, which a bot file that installs its own handler keeps) or as one JSON object a line
(`LOG_FORMAT=json`, bot/log_format.py). A line with no level of its own (a traceback's next lines,
a `print`) takes the level of the line before it from the same bot, and a bare Python traceback and
the host's `python -m bot: error: …` start an ERROR: so a bot's error reads as one in the dispatcher's
log, whole.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

# loguru's levels by name; TRACE and SUCCESS have no standard-library twin, so they take the nearest.
LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "SUCCESS": logging.INFO,
          "WARNING": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}
_TEXT_LEVEL = re.compile(r"^\S+ \S+ \| (TRACE|DEBUG|INFO|SUCCESS|WARNING|ERROR|CRITICAL) +\|")
_TRACEBACK = "Traceback (most recent call last):"
_USAGE_ERROR = re.compile(r"^[\w .-]+: error: ")  # argparse's, as `python -m bot` exits on a bad setting


@dataclass(frozen=True)
class BotLine:
    level: int
    message: str
    machine_id: str | None = None
    exception: str | None = None


class BotLineReader:
    """Reads one bot's lines in order (a line without a level continues the one before)."""

    def __init__(self) -> None:
        self.level = logging.INFO

    def read(self, text: str) -> BotLine:
        if text.startswith("{"):
            parsed = _json_line(text)
            if parsed is not None:
                self.level = parsed.level
                return parsed
        match = _TEXT_LEVEL.match(text)
        if match:
            self.level = LEVELS[match.group(1)]
        elif text.startswith(_TRACEBACK) or _USAGE_ERROR.match(text):
            self.level = logging.ERROR
        return BotLine(self.level, text)


def _json_line(text: str) -> BotLine | None:
    try:
        line = json.loads(text)
    except ValueError:
        return None
    if not isinstance(line, dict) or not isinstance(line.get("message"), str):
        return None
    level = LEVELS.get(str(line.get("level", "")).upper(), logging.INFO)
    machine_id = line.get("machine_id")
    exception = line.get("exception")
    return BotLine(level, line["message"], machine_id if isinstance(machine_id, str) else None,
                   exception if isinstance(exception, str) else None)
