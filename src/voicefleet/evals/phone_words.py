"""The bot's words on a phone call, from the session's own transcript (`transcript.jsonl`, written by
the bot host's recorder when the call ends: docs/recording.md), laid on the caller's turns.

A carrier's stream carries audio only, so the caller reads what the bot said afterwards and places
each line by the transcript's own marks of the caller's turns: a bot line answers the caller's speech
it followed (its `latency` back from its start: when the caller fell silent, as the bot heard it) or
the caller line transcribed before it (keys pressed without speech), whichever is later. Those marks
are timed when the bot heard them; a bot line's `start` is where its audio lies, which drifts behind
a starved bot's clock, so it is not what places the line. The two clocks are set against each other
once, at the bot's first line (the first loud audio the caller heard); a line before any mark of the
caller is the greeting. A caller line goes by its end (its start can be an earlier turn's).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from voicefleet.loadtest.session_calls import json_object, session_url

TRANSCRIPT = "transcript.jsonl"
REPORT = "report.json"  # written last: once it is listed, everything the session keeps is


@dataclass
class Heard:
    """What the bot said before the first turn, and to each turn; what it heard the caller say."""

    greeting: str = ""
    answers: list[str] = field(default_factory=list)
    caller: list[str] = field(default_factory=list)


def laid_on_turns(lines: list[dict[str, Any]], first_audio_at: float | None, began: list[float]) -> Heard:
    """The transcript's lines placed on the turns that `began` (the caller's clock) at those times."""
    heard = Heard(answers=[""] * len(began), caller=[""] * len(began))
    bot = [line for line in lines if line.get("who") == "bot" and _seconds(line.get("start")) is not None]
    if not bot or first_audio_at is None:
        return heard
    offset = first_audio_at - float(bot[0]["start"])
    marked = any(_caller_mark(line) is not None for line in lines)  # else: a bot with no STT and no VAD
    heard_caller: float | None = None  # the transcript's latest mark of the caller so far
    for line in lines:
        who, text = line.get("who"), " ".join(str(line.get("text") or "").split())
        if who == "caller" and (end := _seconds(line.get("end"))) is not None:
            heard_caller = end if heard_caller is None else max(heard_caller, end)
        if not text:
            continue
        when = _answered(line, heard_caller, marked) if who == "bot" else _seconds(line.get("end"))
        index = -1 if when is None else bisect.bisect_right(began, when + offset) - 1
        if who == "bot" and index < 0:
            heard.greeting = f"{heard.greeting} {text}".strip()
        elif who == "bot" and index >= 0:
            heard.answers[index] = f"{heard.answers[index]} {text}".strip()
        elif who == "caller" and index >= 0:
            heard.caller[index] = f"{heard.caller[index]} | {text}".strip(" |")
    return heard


def _answered(line: dict[str, Any], heard_caller: float | None, marked: bool) -> float | None:
    """When the caller's turn that a bot line answers was heard, on the transcript's clock: the later of
    the caller's speech it followed and the caller line before it, never after its own start (a barge-in
    into it is the next turn's); its start where the transcript marks no caller at all; None before the
    caller's first mark."""
    start = float(line["start"])
    if not marked:
        return start
    marks = [m for m in (_caller_mark(line), heard_caller) if m is not None]
    return min(start, max(marks)) if marks else None


def _caller_mark(line: dict[str, Any]) -> float | None:
    """A line's mark of the caller: a caller line's end, a bot line's start less its latency."""
    if line.get("who") == "caller":
        return _seconds(line.get("end"))
    start, latency = _seconds(line.get("start")), _seconds(line.get("latency"))
    return None if start is None or latency is None else start - latency


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def transcript_lines(http: httpx.AsyncClient, base_url: str, session_id: str, headers: dict[str, str],
                           wait: float) -> list[dict[str, Any]] | str:
    """The session's transcript once its artifacts are written (at most `wait` seconds after its end),
    or why there is none, in words."""
    route = f"{session_url(base_url, session_id)}/artifacts"
    deadline = time.monotonic() + wait
    while True:
        try:
            response = await http.get(route, headers=headers)
        except httpx.TransportError as error:
            return f"its artifacts could not be listed ({type(error).__name__})"
        listing = json_object(response)
        names = {str(a.get("name")): a for a in listing.get("artifacts") or [] if isinstance(a, dict)}
        if response.is_success and REPORT in names:
            if TRANSCRIPT not in names:
                return f"the session kept no transcript: its report says why (voicefleet artifacts get {session_id})"
            return await _fetched(http, str(names[TRANSCRIPT].get("url")))
        if response.status_code not in (200, 404) or time.monotonic() > deadline:
            code = (listing.get("error") or {}).get("code") if isinstance(listing.get("error"), dict) else None
            return (f"its transcript was not written within {wait:g} s of the call's end "
                    f"(GET artifacts: {response.status_code}{f' {code}' if code else ''})")
        await asyncio.sleep(0.5)


async def _fetched(http: httpx.AsyncClient, url: str) -> list[dict[str, Any]] | str:
    """The transcript through its own download URL (the URL is the permission: no key goes with it)."""
    try:
        response = await http.get(url, follow_redirects=False)
    except httpx.TransportError as error:
        return f"its transcript could not be downloaded ({type(error).__name__})"
    if not response.is_success:
        return f"its transcript's download URL answered HTTP {response.status_code}"
    lines = []
    for raw in response.text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            return "its transcript is not one JSON object a line"
        if isinstance(line, dict):
            lines.append(line)
    return lines
