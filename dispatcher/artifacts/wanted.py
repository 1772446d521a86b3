"""What a `POST /start` asks of its session's recording: `"recording": "off"` (or any one policy,
for the audio and the transcript alike) or `{"audio": …, "transcript": …}`. A start may lower its
session's policy, never raise it: `raised` names what it asked beyond the policy (422
`recording_not_allowed`), and `lowered` is what the session keeps."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dispatcher.artifacts.rules import POLICIES, Keeping


@dataclass(frozen=True)
class Wanted:
    audio: str | None = None  # None: as the policy says
    transcript: str | None = None

    @classmethod
    def of(cls, asked: str | dict[str, str] | None) -> Wanted | None:
        if asked is None:
            return None
        if isinstance(asked, str):
            return cls(audio=asked, transcript=asked)
        return cls(audio=asked.get("audio"), transcript=asked.get("transcript"))


def _more(asked: str | None, policy: str) -> bool:
    return asked is not None and POLICIES.index(asked) > POLICIES.index(policy)


def raised(policy: Keeping, wanted: Wanted | None) -> list[str]:
    """`audio=on (policy: off)`, … for each field the start asks more of than the policy gives."""
    if wanted is None:
        return []
    return [f"{name}={asked} (policy: {given})" for name, asked, given in
            (("audio", wanted.audio, policy.audio), ("transcript", wanted.transcript, policy.transcript))
            if _more(asked, given)]


def lowered(policy: Keeping, wanted: Wanted | None) -> Keeping:
    """The policy with what the start asked lower in its place (what it asked higher is ignored:
    the start was checked before, and a release's rule applied after may lower it further)."""
    if wanted is None:
        return policy
    return replace(policy, audio=_lower(wanted.audio, policy.audio),
                   transcript=_lower(wanted.transcript, policy.transcript))


def _lower(asked: str | None, policy: str) -> str:
    return asked if asked is not None and POLICIES.index(asked) < POLICIES.index(policy) else policy
