"""`voicefleet session ID --transcript`: the call's turns from its recorded `transcript.jsonl`, read
through its download URL: when (seconds into the recording), who, how fast the bot answered,
whether the caller cut it off, and what was said."""

from __future__ import annotations

import json
from typing import Any

import click

from voicefleet.artifact_files import artifact_named, fetched, listing
from voicefleet.errors import Failed
from voicefleet.options import print_json, wants_json
from voicefleet.sessions import session_api
from voicefleet.tables import table

TRANSCRIPT = "transcript.jsonl"


def print_transcript(session_id: str) -> None:
    with session_api() as api:
        found = listing(api, session_id)
        timeout = api.target.timeout
    artifact = artifact_named(found, TRANSCRIPT)
    if artifact is None:
        raise Failed(f"session {session_id} kept no transcript (its bot ended without handing its turns over): "
                     f"its report says why, `voicefleet artifacts get {session_id}`")
    data = fetched(artifact, timeout, found.get("expires_in"))
    try:
        turns = [json.loads(line) for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    except ValueError:
        raise Failed(f"{TRANSCRIPT} of session {session_id} is not one JSON object a line: "
                     f"`voicefleet artifacts get {session_id}` downloads it as it is") from None
    if wants_json(click.get_current_context()):
        print_json({"session_id": session_id, "turns": turns})
        return
    click.echo(table(["TIME", "WHO", "LATENCY", "INTERRUPTED", "TEXT"], [_row(turn) for turn in turns]))


def _row(turn: dict[str, Any]) -> list[str]:
    latency = turn.get("latency")
    interrupted = turn.get("interrupted")
    return [_clock(turn.get("start")), str(turn.get("who", "-")),
            f"{latency:.2f}s" if isinstance(latency, int | float) else "-",
            "-" if interrupted is None else "yes" if interrupted else "no",
            " ".join(str(turn.get("text", "")).split())]


def _clock(seconds: object) -> str:
    """Seconds into the recording as `m:ss.s`, the way a player shows the position."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"
