"""A release's smoke state: whether one session on a real machine of it answered a caller with audio.
A release takes no drawn traffic until it has (docs/releases.md, "Smoke session").

    pending   listed, never smoked (the canary percent it enters at waits in `canary`)
    running   a smoke session is live: `session_id`, since `at`
    passed    its smoke session's caller heard the bot (`session_id`, `at`)
    failed    it did not: `reason` (the bot's own error, or what never happened), `at`

Stored inside the traffic record (traffic.py), so every replica and region reads the same state and
every change to it is the traffic's compare-and-write. A release with no entry counts as passed:
the deployment's first release, and releases recorded before smoke sessions existed, already serve.

A release may also be smoked by its scenario suite (eval_verdict.py): the suite's verdict is kept
as `eval`, and decides the status as a smoke session's verdict does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dispatcher.releases.eval_verdict import EvalVerdict

Status = Literal["pending", "running", "passed", "failed"]
STATUSES: tuple[Status, ...] = ("pending", "running", "passed", "failed")
MAX_REASON_CHARS = 500  # a bot's error as the timeline bounds it, with its prefix


@dataclass(frozen=True)
class Smoke:
    status: Status
    session_id: str | None = None
    reason: str = ""
    at: float | None = None  # epoch seconds of the last step
    canary: int = 0  # percent it enters at once passed (the deployment's canary percent, kept while it waits)
    eval: EvalVerdict | None = None  # its suite's last verdict, when one was recorded

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def view(self) -> dict[str, Any]:
        """As `GET /releases` shows it."""
        return {"status": self.status, "session_id": self.session_id, "reason": self.reason, "at": self.at}

    def to_json(self) -> dict[str, Any]:
        kept = {"eval": self.eval.view()} if self.eval is not None else {}
        return {**self.view(), "canary": self.canary, **kept}

    @classmethod
    def from_json(cls, data: object) -> Smoke | None:
        """None for anything that is not a smoke state (the whole record is then refused)."""
        if not isinstance(data, Mapping) or data.get("status") not in STATUSES:
            return None
        session_id, reason, at, canary = (data.get("session_id"), data.get("reason", ""), data.get("at"),
                                          data.get("canary", 0))
        if session_id is not None and (not isinstance(session_id, str) or len(session_id) > 64):
            return None
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            return None
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | float)):
            return None
        if isinstance(canary, bool) or not isinstance(canary, int) or not 0 <= canary <= 100:
            return None
        verdict = EvalVerdict.from_json(data["eval"]) if data.get("eval") is not None else None
        if data.get("eval") is not None and verdict is None:
            return None
        return cls(data["status"], session_id, reason, None if at is None else float(at), canary, verdict)


PASSED = Smoke("passed")  # what a release without an entry counts as


def bounded(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"
