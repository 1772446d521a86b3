"""Where a session's artifacts live: `<prefix>/retain-<N>d/<yyyy>/<mm>/<dd>/<session_id>/`, the
retention first (rules.py: one lifecycle rule per day count, a prefix every cloud's lifecycle
matches), then dated by the session's start (UTC), readable with any tool of the store's.

An index object per session (`<prefix>/retain-<N>d/sessions/<session_id>.json`) says which day's
folder holds it, so reading and erasing a session never list a whole bucket; it sits under the same
retention folder, so the lifecycle rule that expires the session expires its index with it. A
reader finds it by trying the retention folders the rules can give (a handful of reads), and the
index of a session recorded before retention folders (`<prefix>/sessions/…`). Erasures leave an
audit record under `<prefix>/erasures/`, which no retention rule touches."""

from __future__ import annotations

import time
from collections.abc import Iterable

from dispatcher.artifacts.rules import retention_folder

RECORDING = "recording.wav"
REPORT = "report.json"
TRANSCRIPT = "transcript.jsonl"
HOLD_MARKER = ".hold"  # the local folder store's legal hold: a marker beside the held object


def _joined(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part)


def session_folder(prefix: str, session_id: str, started_at: float, days: int) -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime(started_at))
    return _joined(prefix, retention_folder(days), day, session_id) + "/"


def index_key(prefix: str, session_id: str, days: int) -> str:
    return _joined(prefix, retention_folder(days), "sessions", f"{session_id}.json")


def index_keys(prefix: str, session_id: str, days: Iterable[int]) -> list[str]:
    """Where a session's index may be: under each retention folder the rules give, then the old place."""
    return [index_key(prefix, session_id, d) for d in sorted(set(days))] + \
        [_joined(prefix, "sessions", f"{session_id}.json")]


def index_of_folder(folder: str) -> str:
    """The index beside a session folder `<root>/<yyyy>/<mm>/<dd>/<id>/`: `<root>/sessions/<id>.json`."""
    parts = folder.strip("/").split("/")
    root, session_id = parts[:-4], parts[-1]
    return _joined(*root, "sessions", f"{session_id}.json")


def erasure_key(prefix: str, session_id: str, at: float) -> str:
    return _joined(prefix, "erasures", time.strftime("%Y/%m/%d", time.gmtime(at)), f"{session_id}.json")


def names_secret_key(prefix: str, name: str) -> str:
    """The key names' secret in a cloud store (names_secret.py): beside the retention folders, under none."""
    return _joined(prefix, name)
