"""A recording under way, handed from the replica that holds it to the one that holds its bot.

The replica that admits a start plans its recording; its bot's channel may end at another replica
(a warm bot held there, a cold bot or a re-dial through a load balancer). The bot asks for its
part URLs, hands over its turns and logs, and reports its end on that channel, so the recording
must be held there: that replica reads from the session's timeline which replica holds it (the
last `recording_planned` or `recording_moved`) and asks it, over the store's relay, for the record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from botchannel.recording import MAX_PARTS, RecordingPlan
from dispatcher.artifacts.rules import POLICIES, Keeping
from dispatcher.artifacts.session_recording import Recording

METHOD_HAND_OVER = "recording.hand_over"
HELD = ("recording_planned", "recording_moved")  # timeline events naming the replica that holds it
FACTS = ("release", "region", "key_name", "provider", "transport", "retention_days", "consent")


def holder_of(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The replica that last took up the session's recording, from its timeline; None: never planned."""
    holder: str | None = None
    for event in events:
        if event.get("event") in HELD and isinstance(event.get("replica"), str):
            holder = event["replica"]
    return holder


def record_of(recording: Recording) -> dict[str, Any]:
    """What another replica needs to go on with the recording (nothing of the bot's end: it comes later)."""
    return {"folder": recording.folder, "started_at": recording.started_at, "plan": recording.plan.params(),
            "facts": {name: recording.facts.get(name) for name in FACTS if name in recording.facts},
            "upload_id": recording.upload_id, "last_part": recording.last_part,
            "keeping": {"audio": recording.keeping.audio, "transcript": recording.keeping.transcript,
                        "days": recording.keeping.days},
            "errors": recording.errors[:10], "urls_until": recording.urls_until}


def recording_from(session_id: str, record: Mapping[str, Any]) -> Recording:
    """The recording a replica handed over; ValueError when the record is not one (a replica of
    another version: the recording stays where it was, finished there)."""
    folder, started_at, upload_id = record.get("folder"), record.get("started_at"), record.get("upload_id")
    last_part, keeping, facts = record.get("last_part"), record.get("keeping"), record.get("facts")
    plan = record.get("plan")
    if not isinstance(folder, str) or not folder.endswith(f"/{session_id}/") \
            or not isinstance(started_at, int | float) or not (upload_id is None or isinstance(upload_id, str)) \
            or not isinstance(facts, Mapping) or not isinstance(plan, Mapping) or not isinstance(keeping, Mapping) \
            or not isinstance(last_part, int) or not 1 <= last_part <= MAX_PARTS:
        raise ValueError("not a recording's record")
    audio, transcript, days = keeping.get("audio"), keeping.get("transcript"), keeping.get("days")
    if audio not in POLICIES or transcript not in POLICIES or not isinstance(days, int) or isinstance(days, bool):
        raise ValueError("not a recording's keeping")
    errors = record.get("errors")
    until = record.get("urls_until")
    return Recording(session_id, folder, _seconds(started_at), RecordingPlan.from_params(plan),
                     {name: facts.get(name) for name in FACTS if name in facts}, upload_id=upload_id,
                     last_part=last_part, keeping=Keeping(audio=audio, transcript=transcript, days=days),
                     errors=[str(e)[:500] for e in errors[:10]] if isinstance(errors, list) else [],
                     urls_until=_seconds(until))


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0
