"""The record of a Daily dial-in call's transfer in the replicas' store, at `record_key(session_id)`: written and
read in this one format. daily_transfers.py claims it before Daily is asked and writes what its request learnt;
daily_calltransfer.py settles it from Daily's calltransfer webhooks.

Its value is the claim (a random token, alone while the request is under way or once Daily answered it), then
` leg=<dial>` for a warm transfer (the person's leg, for a replica to stop it), or ` outcome=<state>` for a cold
one whose answer did not say: `unknown` (answered 504, nothing on the timeline), `unknown-noted` (cancelled, noted
`transferred` unknown), `heard` (Daily's webhook came while the request was under way: Daily took it) or
`reconciled` (an unknown one such a webhook settled). A value in no such form (a later release's) reads as None:
left as it is."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

PREFIX = "daily-transfer:"  # + session id: the transfer under way (or done), at every replica
_LEG = " leg="
_OUTCOME = " outcome="


class Outcome(StrEnum):
    """A cold transfer's outcome, once its answer did not say it."""
    UNKNOWN_ANSWERED = "unknown"
    UNKNOWN_NOTED = "unknown-noted"
    HEARD = "heard"
    RECONCILED = "reconciled"


def record_key(session_id: str) -> str:
    return PREFIX + session_id


@dataclass(frozen=True)
class TransferRecord:
    claim: str
    leg: str | None = None
    outcome: Outcome | None = None

    @classmethod
    def parse(cls, value: str) -> TransferRecord | None:
        head, has_outcome, state = value.partition(_OUTCOME)
        claim, has_leg, leg = head.partition(_LEG)
        if not claim or " " in claim or (has_leg and not leg):
            return None
        try:
            outcome = Outcome(state) if has_outcome else None
        except ValueError:
            return None
        return cls(claim, leg if has_leg else None, outcome)

    def __str__(self) -> str:
        leg = "" if self.leg is None else f"{_LEG}{self.leg}"
        return f"{self.claim}{leg}" + ("" if self.outcome is None else f"{_OUTCOME}{self.outcome.value}")

    @property
    def bare(self) -> bool:
        """The claim alone: the request under way, or answered by Daily (a webhook then says it heard)."""
        return self.leg is None and self.outcome is None

    def with_leg(self, dial: str) -> TransferRecord:
        return replace(self, leg=dial)

    def settled(self, outcome: Outcome) -> TransferRecord:
        return replace(self, outcome=outcome)
