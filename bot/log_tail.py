"""The bot host's last log lines, kept in memory for the session's recording (`logs.jsonl`).

A loguru handler beside the one that writes to stderr, at the same level and with the same filter
(bot/app.py), so it holds what the session's log shows and nothing the log keeps out (the channel's
wire, the caller's `body`): each line {time, level, logger, message}, a traceback joined to its
message. Bounded as the contract says (botchannel/recording.py): the last `MAX_LOG_LINES` lines and
`MAX_LOG_BYTES` of them; older lines are dropped and counted. The recorder hands them to the
dispatcher at the session's end; a bot that crashed hands over none. Pure standard library: the
handler runs for every line of every bot, recorded or not, and costs a dict and a deque append.

logs.jsonl is read by whoever reads the session, not only the bot's team: the values of the bot's
own secret environment variables (its providers' keys, its channel credential) are masked wherever
a line shows them (an HTTP client's error that names a URL with `?key=…`, a traceback's locals).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from datetime import UTC
from json.encoder import encode_basestring_ascii
from typing import Any

from botchannel.recording import MAX_LOG_BYTES, MAX_LOG_LINES, MAX_LOG_MESSAGE

FIELDS = ("time", "level", "logger", "message")
# A line's size as the channel sends it (ASCII JSON: a non-ASCII character is 6 bytes, `\uXXXX`): its
# keys, punctuation and a separator, plus each value as JSON; an upper bound of the compact encoding.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET = 8  # characters: a shorter value ("1", "true") would mask ordinary words
MASK = "[redacted]"
LINE_OVERHEAD = len(json.dumps(dict.fromkeys(FIELDS, ""))) - 2 * len(FIELDS) + 2


class LogTail:
    def __init__(self, max_lines: int = MAX_LOG_LINES, max_bytes: int = MAX_LOG_BYTES) -> None:
        self._lines: deque[tuple[dict[str, str], int]] = deque()
        self._bytes = 0
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self.dropped = 0  # older lines let go to stay within the bounds
        self._secrets: tuple[str, ...] = ()

    def mask_secrets_of(self, env: Mapping[str, str]) -> None:
        """Masks, in every line kept from now on, the values of `env`'s secret variables."""
        found = {value for name, value in env.items() if SECRET_NAME.search(name) and len(value) >= MIN_SECRET}
        self._secrets = tuple(sorted(found, key=len, reverse=True))  # a longer one first: it may hold a shorter

    def sink(self, message: Any) -> None:
        """A loguru sink: the record kept as a line (never raises: a log line must not end a call)."""
        try:
            record = message.record
            text = str(record["message"])
            if record["exception"] is not None:
                text += "\n" + _traceback(record["exception"])
            for secret in self._secrets:
                text = text.replace(secret, MASK)
            self.add({"time": record["time"].astimezone(UTC).isoformat(timespec="milliseconds"),
                      "level": record["level"].name.lower(), "logger": str(record["name"]),
                      "message": text[:MAX_LOG_MESSAGE]})
        except Exception:  # noqa: S110 - a line this handler cannot read is only not kept
            pass

    def add(self, line: dict[str, str]) -> None:
        size = LINE_OVERHEAD + sum(len(encode_basestring_ascii(line[name])) for name in FIELDS)
        self._lines.append((line, size))
        self._bytes += size
        while len(self._lines) > self._max_lines or self._bytes > self._max_bytes:
            _, gone = self._lines.popleft()
            self._bytes -= gone
            self.dropped += 1

    def lines(self) -> list[dict[str, str]]:
        return [line for line, _ in self._lines]

    def chunks(self, budget: int) -> list[list[dict[str, str]]]:
        """The lines, oldest first, in runs whose JSON fits in `budget` bytes each."""
        runs: list[list[dict[str, str]]] = []
        used = budget + 1
        for line, size in self._lines:
            if used + size > budget:
                runs.append([])
                used = 0
            runs[-1].append(line)
            used += size
        return runs


def _traceback(exception: Any) -> str:
    import traceback

    return "".join(traceback.format_exception(exception.type, exception.value, exception.traceback)).rstrip()


TAIL = LogTail()  # the process's: one bot serves one session
