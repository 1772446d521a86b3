"""The bot's words on a phone call, from the session's own transcript (`transcript.jsonl`, written by
the bot host's recorder when the call ends: docs/recording.md), laid on the caller's turns.

A carrier's media stream carries audio only, so the caller reads what the bot said afterwards and
places each line by time: the transcript's clock is the recording's, the caller's is its own, and
the bot's first line is the first loud audio the caller heard, which gives the offset between the
two. A bot line then belongs to the caller's turn under way when it began (before the first turn:
the greeting); a caller line (the bot's own transcription of the caller) by when it was transcribed,
its end (its start can be an earlier turn's, for keys pressed without speech).
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
    bot = [line for line in lines if line.get("who") == "bot" and isinstance(line.get("start"), int | float)]
    if not bot or first_audio_at is None:
        return heard
    offset = first_audio_at - float(bot[0]["start"])
    for line in lines:
        who, text = line.get("who"), " ".join(str(line.get("text") or "").split())
        when = line.get("start" if who == "bot" else "end")
        if not isinstance(when, int | float) or not text:
            continue
        index = bisect.bisect_right(began, float(when) + offset) - 1
        if who == "bot" and index < 0:
            heard.greeting = f"{heard.greeting} {text}".strip()
        elif who == "bot":
            heard.answers[index] = f"{heard.answers[index]} {text}".strip()
        elif who == "caller" and index >= 0:
            heard.caller[index] = f"{heard.caller[index]} | {text}".strip(" |")
    return heard


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
