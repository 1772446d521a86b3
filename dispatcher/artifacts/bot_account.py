"""A bot's own account of its recording (`recording.finished`) as the dispatcher keeps it: the bot is
the least trusted part, so each field is checked and bounded, and one of the wrong shape is dropped
(completing the upload and writing the report must not depend on what a bot sent)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

COUNTS = ("parts", "bytes", "dropped_frames", "transcript_dropped")
NOTES = ("degraded", "upload_errors")
MAX_NOTES = 10
MAX_NOTE = 300


def bot_account(sent: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `sent` that follow the contract (botchannel/recording.py), bounded."""
    kept: dict[str, Any] = {}
    for name in COUNTS:
        value = sent.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
            kept[name] = value
    seconds = sent.get("seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and math.isfinite(seconds) and seconds >= 0:
        kept["seconds"] = float(seconds)
    for name in NOTES:
        notes = sent.get(name)
        if isinstance(notes, list):
            kept[name] = [note[:MAX_NOTE] for note in notes[:MAX_NOTES] if isinstance(note, str)]
    return kept
