"""Completing a session's upload at its end, one step at a time: the parts listed, joined, then the
WAV header's true sizes written. Each step is done once; a store that fails part-way raises
StoreError and is asked again from the step that failed, and nothing kept is ever dropped for it:
the parts stay in their upload until they are joined (the orphan sweep joins them if this
dispatcher never can). Only an upload with no part worth keeping is aborted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botchannel.recording import MIN_PART_BYTES, WAV_HEADER_BYTES, recording_seconds, wav_sizes
from dispatcher.artifacts.store import ArtifactStore, Part, StoreError

log = logging.getLogger("dispatcher.artifacts")
Guard = Callable[[], Awaitable[None]]  # raises Erased when the session was erased meanwhile


@dataclass
class Completion:
    """How far a session's upload got towards its object (kept across the attempts)."""

    kept: list[Part] | None = None  # the parts to join, once listed
    arrived: int = 0  # how many parts had arrived
    join_tried: bool = False  # a join was asked for: it may have been done, its answer lost
    joined: bool = False
    patched: bool = False


def kept_parts(parts: list[Part], part_bytes: int = MIN_PART_BYTES) -> list[Part]:
    """The parts that join into the bot's stream: from part 1 on, without a gap, every one but the
    last exactly the plan's `part_bytes` (a shorter one is a checkpoint whose full part never came:
    what follows would be shifted) and none longer (not what the bot was told to write: a part put
    to fill the bucket is left out, and S3 drops the parts a completion does not name)."""
    kept: list[Part] = []
    for part in sorted(parts, key=lambda p: p.number):
        if part.number != len(kept) + 1 or part.size > part_bytes or (kept and kept[-1].size != part_bytes):
            break
        kept.append(part)
    return kept


async def completed(store: ArtifactStore, key: str, upload_id: str | None, state: Completion, *, part_bytes: int,
                    sample_rate: int, bot_stats: Mapping[str, Any] | None, tags: Mapping[str, str],
                    guard: Guard) -> dict[str, Any]:
    """The recording's outcome for the report, its upload completed (StoreError: ask again later)."""
    outcome: dict[str, Any] = {"sample_rate": sample_rate, "channels": {"left": "caller", "right": "bot"}}
    if upload_id is None:
        return {**outcome, "status": "none", "why": "the bot uploaded no audio"}
    if state.kept is None:
        arrived = await store.parts(key, upload_id)
        state.kept, state.arrived = kept_parts(arrived, part_bytes), len(arrived)
    kept = state.kept
    total = sum(part.size for part in kept)
    if not total:  # nothing worth a recording: the upload goes, and no empty recording.wav is ever listed
        await abort_quietly(store, key, upload_id)
        return {**outcome, "status": "none", "why": "no part of the recording arrived"}
    if not state.joined:
        await guard()
        if not (state.join_tried and await _joined_already(store, key, total)):
            state.join_tried = True
            await store.complete(key, upload_id, kept)
        state.joined = True
    if not state.patched:
        await guard()
        await store.patch(key, wav_sizes(total), first_part=kept[0].size, tags=tags)
        state.patched = True
    status, why = "complete", None
    if bot_stats is None:
        status, why = "partial", "the bot ended without closing its recording (it was killed or lost): " \
                                 "the parts it had uploaded are kept"
    elif len(kept) < state.arrived or int(bot_stats.get("bytes") or 0) > total:
        status, why = "partial", "some parts did not arrive"
    elif bot_stats.get("degraded"):
        status, why = "partial", "; ".join(str(d) for d in bot_stats["degraded"])[:500]
    return {**outcome, "status": status, "why": why, "object": key.rpartition("/")[2], "bytes": total,
            "seconds": round(recording_seconds(total, sample_rate), 3), "parts": len(kept),
            "bot": dict(bot_stats) if bot_stats else None, "header_bytes": WAV_HEADER_BYTES}


async def _joined_already(store: ArtifactStore, key: str, total: int) -> bool:
    """A join asked for before, whose answer was lost: the object is there, whole."""
    return any(o.key == key and o.size == total for o in await store.objects_under(key))


async def abort_quietly(store: ArtifactStore, key: str, upload_id: str) -> None:
    try:
        await store.abort(key, upload_id)
    except StoreError as exc:
        log.warning("an upload could not be aborted (the bucket's incomplete-upload rule removes it): %s", exc)
