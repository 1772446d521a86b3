"""A bot's own log lines as the dispatcher keeps them (`logs.jsonl`, one line a line): the bot hands
them over at its end (`recording.logs`, in as many requests as they take), and, as with its
transcript, each line is checked and bounded before it is written, whatever the bot sent.

A line: `time` (ISO 8601, UTC), `level`, `logger`, `message`. The bounds are the contract's
(botchannel/recording.py: `MAX_LOG_LINES` lines, `MAX_LOG_BYTES` in all, `MAX_LOG_MESSAGE` characters
a message); a line past them, or of the wrong shape, is counted, not kept. Secrets are masked as the
dispatcher masks the local bots' lines it forwards into its own log (the secret paths and query
parameters of dispatcher/observability/log_redaction.py), over what the bot host already kept out;
and, since logs.jsonl is read by whoever reads the session, the credentials a bot's own lines carry:
the query parameters some providers take their key in (Pipecat's Gemini file API `?key=`, Async's
`?api_key=`, an HTTP client's error names the URL), a store's signature on a part's URL, and an
`Authorization` value. They are kept as the transcript is (`logs_kept`: a service's debug lines can
quote the call): not where the session keeps no transcript or withholds it, nor for a consent call
never announced, and for an announced one only from the announcement's end on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from botchannel.recording import MAX_LOG_BYTES, MAX_LOG_LINES, MAX_LOG_MESSAGE
from botchannel.utf8_text import utf8_text
from dispatcher.observability.log_redaction import MASK, mask_secret_paths

LOGS = "logs.jsonl"
LEVELS = frozenset({"trace", "debug", "info", "success", "warning", "error", "critical"})
MAX_FIELD = 200  # characters of a line's time and logger
# Query parameters whose value is a credential (compared lower-case): providers' API keys and tokens,
# the stores' URL signatures (GCS V4, S3 SigV4 and its session token, Azure SAS `sig`).
CREDENTIAL_PARAMETERS = frozenset({
    "key", "api_key", "apikey", "api-key", "xi_api_key", "access_token", "auth_token", "token", "secret",
    "password", "x-goog-signature", "x-amz-signature", "x-amz-security-token", "sig", "signature",
})
_PARAMETER = re.compile(r"([?&;])([^=&#\s\"']*)=([^&#\s\"']*)")
_AUTHORIZATION = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|token|key|basic)?\s*)"
                            r"[^\s\"',}]+")
NONE_HANDED_OVER = ("the bot ended without handing over its log lines (killed or lost, or a bot host from "
                    "before logs.jsonl)")


@dataclass
class BotLogs:
    lines: list[dict[str, str]] = field(default_factory=list)
    size: int = 0  # bytes of `lines` as written
    dropped: int = 0  # lines sent that were not kept here (past the bounds, or of the wrong shape)
    bot_dropped: int = 0  # older lines the bot itself let go before its end (its own count)

    def take(self, sent: Mapping[str, Any]) -> None:
        """One `recording.logs` request's lines, each checked, masked and bounded."""
        count = sent.get("dropped")
        if isinstance(count, int) and not isinstance(count, bool) and 0 <= count < 2**63:
            self.bot_dropped = max(self.bot_dropped, count)
        lines = sent.get("lines")
        if not isinstance(lines, list):
            return
        for line in lines:
            kept = _line(line)
            size = len(json.dumps(kept, ensure_ascii=False).encode()) + 1 if kept is not None else 0
            if kept is None or len(self.lines) >= MAX_LOG_LINES or self.size + size > MAX_LOG_BYTES:
                self.dropped += 1
                continue
            self.lines.append(kept)
            self.size += size

    def body(self) -> bytes:
        return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in self.lines).encode()


def _line(sent: object) -> dict[str, str] | None:
    if not isinstance(sent, dict):
        return None
    time, level, logger, message = (sent.get(name) for name in ("time", "level", "logger", "message"))
    if not (isinstance(time, str) and isinstance(level, str) and isinstance(logger, str)
            and isinstance(message, str)) or level not in LEVELS:
        return None
    return {"time": utf8_text(time[:MAX_FIELD]), "level": level, "logger": utf8_text(logger[:MAX_FIELD]),
            "message": utf8_text(masked(message[:MAX_LOG_MESSAGE]))}


def masked(message: str) -> str:
    """A bot's line with its credentials masked: the dispatcher's own secret paths, then every
    credential query parameter and `Authorization` value."""
    message = _PARAMETER.sub(_masked_parameter, mask_secret_paths(message))
    return _AUTHORIZATION.sub(rf"\g<1>{MASK}", message)


def _masked_parameter(found: re.Match[str]) -> str:
    separator, name, value = found.groups()
    if value and unquote_plus(name).lower() in CREDENTIAL_PARAMETERS:
        value = MASK
    return f"{separator}{name}={value}"


def logs_kept(logs: BotLogs | None, *, withheld: str | None, consent: float | None
              ) -> tuple[dict[str, Any], str, bytes | None]:
    """What the report says of `logs.jsonl`, its name, and its body when it is kept: not when the
    session's policy withholds them (`withheld`, as its transcript), and for a consent session only
    the lines from the end of its announcement (`consent`, epoch seconds) on, as its recording."""
    if withheld is not None:
        return {"kept": False, "why": withheld}, LOGS, None
    if logs is None:
        return {"kept": False, "why": NONE_HANDED_OVER}, LOGS, None
    lines, before = logs.lines, 0
    if consent is not None:
        lines = [line for line in logs.lines if _epoch(line["time"]) >= consent]
        before = len(logs.lines) - len(lines)
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    section = {"kept": True, "object": LOGS, "lines": len(lines), "bytes": len(body),
               "dropped_by_bot": logs.bot_dropped, "dropped_here": logs.dropped,
               "bounds": {"lines": MAX_LOG_LINES, "bytes": MAX_LOG_BYTES, "message_characters": MAX_LOG_MESSAGE}}
    if consent is not None:
        section["before_consent"] = before  # lines from before the announcement ended: not kept
    return section, LOGS, body


def _epoch(stamp: str) -> float:
    """A line's ISO 8601 time as epoch seconds; one that is no time counts as the earliest (not kept
    where only what follows the announcement is)."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return float("-inf")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
