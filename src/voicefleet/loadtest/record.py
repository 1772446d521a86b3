"""What the load test measures of one session, every time in seconds from the moment its
`POST /start` was sent (a SIP call's: its INVITE; the caller's own monotonic clock), and how it ended."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OK = "ok"
REFUSED = "refused"  # the start was answered with an error (its `error.code`)
FAILED = "failed"  # started, then something a caller needs did not happen (or no answer came)
DROPPED = "dropped"  # due while --concurrency sessions were under way: not placed


@dataclass
class SessionRecord:
    index: int
    due: float  # seconds from the run's start the session was due at
    transport: str
    outcome: str = OK
    code: str | None = None  # a refusal's `error.code`, or what failed
    status: int | None = None  # the start's HTTP status
    message: str | None = None
    session_id: str | None = None
    release: str | None = None
    start_answer: float | None = None  # POST /start → its answer
    ready: float | None = None  # POST /start → the session no longer `starting` (its bot runs)
    connected: float | None = None  # POST /start → the caller's media connection up (WebRTC: ICE and DTLS)
    first_frame: float | None = None  # POST /start → the first bot audio received, silent or not (WebRTC: out of
    # aiortc's jitter buffer, which holds a new stream's first 4 packets, 80 ms, before it gives any)
    first_audio: float | None = None  # POST /start → the first non-silent bot audio the caller hears
    caller_spoke_first: bool = False  # the bot said nothing first (within --speak-first-after): the caller did
    turns: list[float | None] = field(default_factory=list)  # per turn: end of the caller's speech → reply
    timeline: dict[str, float] = field(default_factory=dict)  # the dispatcher's: requested → joined, ready, first_audio
    bot_end: str | None = None  # the bot's own account of the end (the timeline's `ended`), read after the hang-up

    def fail(self, code: str, message: str) -> None:
        """The first failure is the one kept: what followed it is its consequence."""
        if self.outcome == OK:
            self.outcome, self.code, self.message = FAILED, code, message

    def as_json(self) -> dict[str, Any]:
        return asdict(self)
