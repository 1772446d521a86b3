"""An eval verdict sent to `POST /releases/{name}/smoke` (`voicefleet releases smoke NAME --suite
PATH` sends it), checked against what the dispatcher itself knows before it is recorded:

    {"suite": "<64 hex digits>", "sessions": ["<every call's session id>", ...], "failed": [...]}

The counts are the dispatcher's (the sessions, the failed ones among them), and every session must
be an eval's session pinned to that release in the deployment's session index: a verdict cannot be
made of another release's sessions, of callers' sessions, or of ids never started. A session the
dispatcher saw fail (its start, its machine, its bot's exit) is never a passed call. A verdict is a
later run's: a session started before the release's last recorded verdict is refused, so a failed
run's calls (or its passing ones alone) cannot be sent again as a pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.releases.eval_verdict import MAX_RUNS, SUITE_ID, EvalVerdict
from dispatcher.sessions.ids import is_session_id
from dispatcher.sessions.listing import SessionListing

FIELDS = ("suite", "sessions", "failed")
SHAPE = ('send {"suite": "<the suite\'s id: 64 hex digits>", "sessions": ["<each call\'s session id>"], '
         '"failed": ["<the failed calls\' session ids>"]}, as `voicefleet releases smoke NAME --suite PATH` does')
READS_AT_ONCE = 20  # index reads in flight for one verdict
SHOWN = 5  # refused sessions named in the message (all of them are in `sessions`)


async def verified(listing: SessionListing, name: str, payload: Mapping[str, Any], by: str,
                   after: float | None = None) -> EvalVerdict:
    """The verdict to record for release `name`, or 422 saying what is wrong with it. `after`: when
    the release's last verdict was recorded (None: never); each session must have started since."""
    suite, sessions, failed = _shaped(payload)
    entries = await _entries(listing, sessions)
    refused: dict[str, str] = {}
    for session_id, entry in zip(sessions, entries, strict=True):
        if entry is None:
            refused[session_id] = "no session with this id was started here"
        elif entry.get("eval") is not True:
            refused[session_id] = "not an eval's session (its start did not say \"eval\": true)"
        elif entry.get("release") != name:
            refused[session_id] = f"an eval's session of release {entry.get('release')}, not {name}"
        elif after is not None and float(entry.get("created") or 0) <= after:
            refused[session_id] = f"started before {name}'s last recorded verdict: a verdict is a later run's calls"
        elif entry.get("status") == "failed" and session_id not in failed:
            refused[session_id] = f"counted as passed, but it failed here ({entry.get('error') or 'failed'})"
    if refused:
        shown = "; ".join(f"{sid}: {why}" for sid, why in list(refused.items())[:SHOWN])
        more = f" (and {len(refused) - SHOWN} more)" if len(refused) > SHOWN else ""
        raise ApiError(422, "eval_sessions_refused", f"the verdict for {name} is not recorded: {shown}{more}. A "
                       f"verdict is made of the suite's own calls, each pinned to {name}: run it with "
                       f"`voicefleet releases smoke {name} --suite PATH`", extra={"sessions": refused})
    return EvalVerdict.of(suite, sessions, failed, time.time(), by)


def _shaped(payload: Mapping[str, Any]) -> tuple[str, list[str], list[str]]:
    if not set(payload) <= set(FIELDS) or "suite" not in payload or "sessions" not in payload:
        raise _invalid(SHAPE)
    suite, sessions, failed = payload["suite"], payload["sessions"], payload.get("failed", [])
    if not isinstance(suite, str) or not SUITE_ID.fullmatch(suite):
        raise _invalid(f"suite: the suite's id is 64 lower-case hex digits (a SHA-256), not {str(suite)[:80]!r}")
    if not _ids(sessions) or not 1 <= len(sessions) <= MAX_RUNS:
        raise _invalid(f"sessions: 1 to {MAX_RUNS} distinct session ids, one for each call of the suite")
    if not _ids(failed) or not set(failed) <= set(sessions):
        raise _invalid("failed: distinct session ids, each one of `sessions`")
    return suite, list(sessions), list(failed)


def _ids(value: object) -> bool:
    return (isinstance(value, list) and all(isinstance(i, str) and is_session_id(i) for i in value)
            and len(set(value)) == len(value))


async def _entries(listing: SessionListing, sessions: Sequence[str]) -> list[dict[str, Any] | None]:
    slots = asyncio.Semaphore(READS_AT_ONCE)

    async def one(session_id: str) -> dict[str, Any] | None:
        async with slots:
            return await listing.item(session_id)

    return list(await asyncio.gather(*(one(s) for s in sessions)))


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_eval_verdict", message)
