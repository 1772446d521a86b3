"""One session's outcome for its release's health, from its whole timeline: what its caller got (a
start that failed, a bot that failed, a machine that died before its bot could say, a session over
at once), how long they waited, and how the conversation went, in the figures the bot host reported
with its end (docs/releases.md, "What is compared").

What the caller did is not the bot's doing: an end that followed the caller's own stop (of a machine
that still ran: a crash the caller then hung up on is the bot's failure), or the
caller hanging up over the transport before any exchange with the bot was over (a phone caller's:
the relay's `caller_hung_up`, at or before the bot's end), is no early end (the bot's own early ends
still count), and a stop before the bot was ready speaks only once the caller had waited longer than
the stable release takes (`gave_up_after`): then it is a failed start; a quicker stop says nothing
of the release's failures. Either way its wait is a time to ready of at least that long (censored:
the bot was not ready by then)."""

from __future__ import annotations

import math
from typing import Any

from botchannel.conversation import conversation_figures
from dispatcher.releases.conversation import Talk, talk_of
from dispatcher.releases.health import SessionOutcome
from dispatcher.sessions.machine_ends import EVENT as MACHINE_ENDED


def outcome_of(events: list[dict[str, Any]], *, gave_up_after: float = math.inf) -> SessionOutcome | None:
    """One session's outcome from its timeline; None when it names no release (a start refused
    before it was a session, or one older than releases), its caller pinned it, or it is an eval's:
    only callers' sessions the dispatcher gave a release (by weight, or by the key's configured
    release) speak for it. `gave_up_after`: how long a caller may wait for a bot not ready before
    its stop is the bot's failed start (ReleaseHealth.stopped_waiting_bound)."""
    requested = next((e for e in events if e.get("event") == "requested"), None)
    if requested is None or not isinstance(requested.get("release"), str):
        return None
    if requested.get("release_chosen_by") == "pinned":  # a client could pin sessions to sink a canary (or hide one)
        return None
    if requested.get("eval") is True:  # an eval's call is a test, its failures planted or hunted: no caller's
        return None
    began = float(requested["at"])
    at = {e["event"]: float(e["at"]) for e in reversed(events) if isinstance(e.get("at"), int | float)}
    launched = "launched" in at or "claimed" in at
    joined = at.get("joined")
    stops = _caller_stops(events, joined is not None)
    # The machine's end speaks only where the bot did not report its own, and the caller did not stop it.
    machine = _machine_end(events) if "ended" not in at and not _stopped_it(stops, at) else None
    never_served = machine is not None and "ready" not in at  # died at boot, or exited without serving
    stopped = next((float(e["at"]) for e in stops if isinstance(e.get("at"), int | float)), None)
    ready = at.get("ready")
    # How long the caller waited for a bot that was not ready when it stopped (None: no such stop).
    waited = stopped - began if stopped is not None and (ready is None or ready > stopped) else None
    hung = waited is not None and waited > gave_up_after  # longer than the stable release takes to be ready
    failed_start = ("failed" in at and not launched) or never_served or hung
    errored = ("error" in at or ("failed" in at and launched) or _ended_badly(events)
               or (machine == "failed" and not never_served))
    # Stopped before its bot could serve, and soon: nothing for or against its failures, but the
    # bot was not ready by then (a time to ready of at least that long, `censored`).
    censored = waited is not None
    ended = at.get("ended", at.get("machine_ended") if machine is not None else None)
    call_over = _call_ended_at(events)
    if ended is not None and call_over is not None and joined is not None:
        # The caller lost the bot when the call's media ended (never before it joined: two replicas' clocks).
        ended = max(joined, min(ended, call_over))
    if _callee_never_answered(events):
        ended = None  # a placed call's busy line or refusal is the callee's doing, not its bot's early end
    if ended is not None and stopped is not None and stopped <= ended:
        ended = None  # the caller's own stop ended it: how soon is the caller's choice, not the bot's failure
    talk = _talk(events) if joined is not None else None
    if ended is not None and _hung_up_in_first_turn(events, talk):
        ended = None  # the caller left before the bot could answer them: their choice, `left_early` says it
    return SessionOutcome(
        release=requested["release"],
        failed_start=failed_start,
        bot_error=errored,
        ready_seconds=waited if censored else ready - began if ready is not None else None,
        ended_within_seconds=(ended - (joined if joined is not None else began)) if ended is not None else None,
        first_audio_seconds=at["first_audio"] - joined if "first_audio" in at and joined is not None else None,
        talk=talk,
        # Calls no API key asked for (a carrier's stream, a webhook) are many callers under one internal
        # name: no one key's doing, so neither bounded nor left out as one (releases/one_key.py).
        key=requested["caller_id"] if isinstance(requested.get("caller_id"), str)
        and not requested.get("caller_internal") else None,
        warm="claimed" in at,
        ready_censored=censored,
    )


def _talk(events: list[dict[str, Any]]) -> Talk | None:
    """The conversation's figures the bot host reported with its end (a caller who joined)."""
    ended = next((e for e in events if e.get("event") == "ended" and isinstance(e.get("conversation"), dict)), None)
    return talk_of(ended["conversation"]) if ended is not None else None


def _stopped_it(stops: list[dict[str, Any]], at: dict[str, float]) -> bool:
    """A stop asked while the session's machine still ran, so the machine's end is the stop's doing.
    A stop of a machine already over (a crashed bot whose caller then hung up) is not: the stop says
    `machine_running` false; a stop written without it is read by its time, before the machine's end."""
    ended_at = at.get(MACHINE_ENDED)
    for stop in stops:
        running, stopped_at = stop.get("machine_running"), stop.get("at")
        if running is None:  # older: before the machine's end (or with none seen) is a stop of it running
            running = ended_at is None or not isinstance(stopped_at, int | float) or stopped_at <= ended_at
        if running:
            return True
    return False


def _caller_stops(events: list[dict[str, Any]], joined: bool) -> list[dict[str, Any]]:
    """The stops a caller asked for. A phone call's clean-up stop, after its media ended (it carries
    `call_ended_at`), is one only where the call never reached its bot (a caller who hung up while it
    booted: their wait says the rest). Once the bot joined, whoever ended the call (the caller's
    `caller_hung_up`, the bot's own end) is told by the other events, and a bot slow to report its own
    hang-up must not pass as stopped."""
    return [e for e in events if e.get("event") == "stop_requested" and not (joined and "call_ended_at" in e)]


def _callee_never_answered(events: list[dict[str, Any]]) -> bool:
    """A placed call whose callee did not answer (busy, refused, not placed: dispatcher/api/call_outcomes.py)."""
    return any(e.get("event") == "call_outcome" and e.get("outcome") != "answered" for e in events)


def _call_ended_at(events: list[dict[str, Any]]) -> float | None:
    """When the session's phone call's media ended, as its clean-up stop says."""
    return next((float(e["call_ended_at"]) for e in events if e.get("event") == "stop_requested"
                 and isinstance(e.get("call_ended_at"), int | float)), None)


def _machine_end(events: list[dict[str, Any]]) -> str | None:
    """How the session's machine ended as the provider showed it (`ended` or `failed`), if it did."""
    return next((str(e.get("state")) for e in events if e.get("event") == MACHINE_ENDED), None)


# The bot host's own end reasons for a failure of the bot (bot/lifecycle.py): a caller who hung up or
# never connected is no fault of the release, and happens to every release alike. `bot_blocked`: the
# bot's own code held its loop until the caller's connection expired (bot/own_block.py).
BOT_FAULTS = ("error", "bot_failed", "config_error", "bot_blocked")
# The bot's own code closed its connection (bot/lifecycle.py): its designed goodbye, or a hang-up on its caller.
BOT_CLOSED = "bot_closed"


# The bot host's end reasons for a caller who hung up over the transport (a WebRTC peer gone, a Daily
# participant who left, a phone caller's hang-up relayed as the peer leaving): the caller's doing.
CALLER_HANG_UPS = ("peer_disconnected", "participant_left")


def _hung_up_in_first_turn(events: list[dict[str, Any]], talk: Talk | None) -> bool:
    """The bot ended because its caller hung up, before any exchange with them was over (or with no
    figures to say one was). A phone bot's end is not read so: Pipecat's serializers hang up through
    the carrier's API before they close the stream, so the carrier's stop (the relay's
    `caller_hung_up`) comes first for the bot's own end as for the caller's; it stays on the
    timeline for people, not for the judge (docs/releases.md)."""
    hung_up = any(e.get("event") == "ended" and e.get("reason") in CALLER_HANG_UPS for e in events)
    return hung_up and (talk is None or talk.left_early)


def _ended_badly(events: list[dict[str, Any]]) -> bool:
    return any(e.get("event") == "ended" and (e.get("reason") in BOT_FAULTS or _closed_unanswered(e))
               for e in events)


def _closed_unanswered(ended: dict[str, Any]) -> bool:
    """The bot closed the call itself before it answered any caller turn: to a caller who spoke, or
    without a word of its own. The bot's doing, never the caller's (one key's callers cannot hide it).
    A goodbye after an answered turn, or an announcement to a caller who never spoke, is its design."""
    figures = conversation_figures(ended.get("conversation")) if ended.get("reason") == BOT_CLOSED else None
    if figures is None:
        return False
    return not figures["latencies"] and (figures["caller_turns"] > 0 or figures["bot_turns"] == 0)
