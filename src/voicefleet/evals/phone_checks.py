"""What a suite's phone scenarios need of the deployment, said before any call is placed: the bot's
words on a carrier's stream are read from the session's transcript, so a scenario that checks them
needs a dispatcher that keeps transcripts; and the carrier's credentials in the bots' environment
(loadtest/carrier.py)."""

from __future__ import annotations

from typing import Any

from voicefleet.evals.scenario import Scenario
from voicefleet.loadtest.carrier import carrier_check

TRANSCRIPT_WAY = ("start the dispatcher with RECORDING_TRANSCRIPT=on (RECORDING may stay off: docs/recording.md), "
                  "or check only within_ms, silent and bot_ends on that call")


def phone_refusal(scenarios: list[Scenario], health: dict[str, Any],
                  status: dict[str, Any] | None) -> tuple[list[str], str | None]:
    """(lines to print, the refusal that stops the run or None). `status`: `GET /status`'s answer,
    None when the key may not read it (then a dispatcher keeping no transcript fails each such call)."""
    phoned = [s for s in scenarios if s.on_phone]
    if not phoned:
        return [], None
    lines = []
    for transport in sorted({s.transport for s in phoned}):
        line, may_go_on = carrier_check(transport, health)
        if not may_go_on:
            return [], line
        if line:
            lines.append(line)
    reading = next((s for s in phoned if s.reads_words()), None)
    if reading is not None and status is not None:
        recordings = status.get("recordings")
        kept = recordings.get("transcript") if isinstance(recordings, dict) else None
        if kept not in ("on", "consent"):
            return lines, (f"{reading.source}: checks the bot's words on a {reading.transport} call, whose stream "
                           f"carries audio only: the caller reads them from the session's transcript, which this "
                           f"dispatcher does not keep (transcript: {kept or 'off'}): {TRANSCRIPT_WAY}")
    return lines, None
