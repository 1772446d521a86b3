"""One recorded session as the dispatcher holds it, from its plan to its last object written."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botchannel.recording import MAX_PARTS, RecordingPlan
from dispatcher.artifacts.bot_logs import BotLogs
from dispatcher.artifacts.completion import Completion
from dispatcher.artifacts.rules import Keeping


@dataclass
class Recording:
    session_id: str
    folder: str
    started_at: float
    plan: RecordingPlan
    facts: dict[str, Any]  # release, region, key name, provider, transport: the report's
    upload_id: str | None = None
    bot_stats: Mapping[str, Any] | None = None  # the bot's own account at its end (none: it died first)
    errors: list[str] = field(default_factory=list)
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    adopted: bool = False  # taken up from the store (its dispatcher stopped), not started here
    transcript: list[dict[str, Any]] | None = None  # the bot's turns, handed over at its end
    last_part: int = MAX_PARTS  # the highest part number its longest call can reach
    logs: BotLogs | None = None  # the bot's own log lines, handed over at its end
    keeping: Keeping = Keeping(audio="on", transcript="on")  # what it keeps and for how long
    transcript_why: str | None = None  # the bot's reason for handing over no transcript (a redaction that failed)
    urls_until: float = 0.0  # when the last part URL handed to its bot expires
    # Its end, kept across the attempts a failing store takes (finishing.py):
    completion: Completion = field(default_factory=Completion)
    report: dict[str, Any] | None = None  # built once its audio is settled
    pending: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # key → (body, type): still to write
    written: list[str] = field(default_factory=list)  # the keys its end wrote
    erased: bool = False  # erased while its end was written: what it wrote goes too
    delayed: bool = False  # the store failed at its end: said once on the timeline

    def pending_bytes(self) -> int:
        return sum(len(body) for body, _ in self.pending.values())
