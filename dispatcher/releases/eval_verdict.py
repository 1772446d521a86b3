"""A release's eval verdict: its scenario suite (docs/evals.md) run as real calls pinned to it, as
`voicefleet releases smoke NAME --suite PATH` records it. Kept in the release's smoke state
(smoke.py), so it lives in the traffic record: every replica shows the same, and recording it is the
traffic's compare-and-write, in the audit trail.

    suite     the suite's id: a SHA-256 of its scenario files (names and contents), 64 hex digits
    passed    calls that passed, of `runs`
    sessions  the calls' session ids (the first MAX_KEPT_SESSIONS; the failed ones first)
    failed    the failed calls' session ids (the first MAX_KEPT_SESSIONS)
    at, by    when the dispatcher recorded it, and the admin key's id
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SUITE_ID = re.compile(r"[0-9a-f]{64}")
MAX_RUNS = 1000  # what `voicefleet eval` places at most in one run
MAX_KEPT_SESSIONS = 50  # the record is read every second by every replica: ids beyond these are counted
MAX_ID_CHARS = 64
MAX_BY_CHARS = 64


@dataclass(frozen=True)
class EvalVerdict:
    suite: str
    passed: int
    runs: int
    sessions: tuple[str, ...]
    failed: tuple[str, ...]
    at: float
    by: str

    @property
    def ok(self) -> bool:
        return self.runs > 0 and self.passed == self.runs

    def summary(self) -> str:
        """For people and the audit trail: `eval suite 3f2a9c1b0d4e passed 3/3`."""
        return f"eval suite {self.suite[:12]} passed {self.passed}/{self.runs}"

    @classmethod
    def of(cls, suite: str, sessions: Sequence[str], failed: Sequence[str], at: float, by: str) -> EvalVerdict:
        """From every call's session and the failed ones (a subset): the counts are the dispatcher's own."""
        kept = [*failed, *(s for s in sessions if s not in set(failed))][:MAX_KEPT_SESSIONS]
        return cls(suite, len(sessions) - len(failed), len(sessions), tuple(kept),
                   tuple(failed[:MAX_KEPT_SESSIONS]), at, by[:MAX_BY_CHARS])

    def view(self) -> dict[str, Any]:
        return {"suite": self.suite, "passed": self.passed, "runs": self.runs, "ok": self.ok,
                "sessions": list(self.sessions), "failed": list(self.failed), "at": self.at, "by": self.by}

    @classmethod
    def from_json(cls, data: object) -> EvalVerdict | None:
        """None for anything that is not a verdict (the whole record is then refused)."""
        if not isinstance(data, Mapping):
            return None
        suite, passed, runs, at, by = (data.get(k) for k in ("suite", "passed", "runs", "at", "by"))
        sessions, failed = data.get("sessions"), data.get("failed")
        if not (isinstance(suite, str) and SUITE_ID.fullmatch(suite) and isinstance(by, str)
                and len(by) <= MAX_BY_CHARS and isinstance(at, int | float) and not isinstance(at, bool)):
            return None
        if not (isinstance(runs, int) and isinstance(passed, int) and _count(runs, 1) and _count(passed, 0)
                and passed <= runs and isinstance(sessions, list) and _ids(sessions)
                and isinstance(failed, list) and _ids(failed)):
            return None
        return cls(suite, passed, runs, tuple(sessions), tuple(failed), float(at), by)


def _count(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= MAX_RUNS


def _ids(value: list[object]) -> bool:
    return (len(value) <= MAX_KEPT_SESSIONS
            and all(isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS for i in value))
