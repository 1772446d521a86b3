"""A recording under way, handed from the replica that holds it to the one that holds its bot.

The replica that admits a start plans its recording; its bot's channel may end at another replica
(a warm bot held there, a cold bot or a re-dial through a load balancer). The bot asks for its
part URLs, hands over its turns and logs, and reports its end on that channel, so the recording
must be held there: that replica reads from the session's timeline which replica holds it and
asks it, over the store's relay, for the record. The holder notes `recording_moved` (from, to)
itself before it answers, and keeps what it handed for a repeat ask from the same replica: the relay
answers at most once, and an answer lost (the holder stalled past the asker's wait) is asked again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from botchannel.recording import MAX_PARTS, RecordingPlan
from dispatcher.artifacts.rules import POLICIES, Keeping
from dispatcher.artifacts.session_recording import Recording

METHOD_HAND_OVER = "recording.hand_over"
METHOD_TAKE_OVER = "recording.take_over"  # a draining replica gives its recording to the bot's replica
PLANNED, MOVED = "recording_planned", "recording_moved"
FACTS = ("release", "region", "key_name", "provider", "transport", "retention_days", "consent")


def holder_of(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The replica that last took up the session's recording, from its timeline; None: never planned."""
    chain = holders(events)
    return chain[-1] if chain else None


def holders(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The replicas that held the recording, the planner first: each move followed from the replica
    it left (the timeline's order is by each replica's own clock, which may disagree across replicas;
    one replica's moves away are in its own clock's order)."""
    events = list(events)
    planner = next((e.get("replica") for e in events if e.get("event") == PLANNED), None)
    if not isinstance(planner, str):
        return []
    moves = [(e.get("replica_from"), e.get("replica_to") or e.get("replica")) for e in events
             if e.get("event") == MOVED]
    chain = [planner]
    while moves:  # each move followed once: a cycle of moves ends
        step = next((i for i, (from_, to) in enumerate(moves) if from_ == chain[-1] and isinstance(to, str)), None)
        if step is None:
            break
        chain.append(str(moves.pop(step)[1]))
    return chain


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
