"""Where a session's artifacts live: `<prefix>/<yyyy>/<mm>/<dd>/<session_id>/`, dated by the session's
start (UTC), readable with any tool of the store's. An index object per session
(`<prefix>/sessions/<session_id>.json`) says which day's folder holds it, so reading and erasing a
session never list a whole bucket; erasures leave an audit record under `<prefix>/erasures/`."""

from __future__ import annotations

import time

RECORDING = "recording.wav"
REPORT = "report.json"
TRANSCRIPT = "transcript.jsonl"


def _joined(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part)


def session_folder(prefix: str, session_id: str, started_at: float) -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime(started_at))
    return _joined(prefix, day, session_id) + "/"


def index_key(prefix: str, session_id: str) -> str:
    return _joined(prefix, "sessions", f"{session_id}.json")


def erasure_key(prefix: str, session_id: str, at: float) -> str:
    return _joined(prefix, "erasures", time.strftime("%Y/%m/%d", time.gmtime(at)), f"{session_id}.json")
