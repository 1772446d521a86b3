"""Exotel's side of an App Bazaar flow "Voicebot applet → Connect applet (dynamic URL)", as Exotel documents
it (support.exotel.com "Programmable Connect: Working with Connect Applet (Dynamic URL)"; developer.exotel.com
"Connect Voice AI with Flow": "Bot → Connect (human)"):

- the Voicebot applet streams the call (tests/fakes/carriers.py `CarrierCall`, Exotel's shape, with the
  Basic credential); when the stream is closed by the bot's side, the flow moves on to the next applet;
- the Connect applet GETs its Primary URL with the call's details as URL-encoded query parameters
  (CallSid, CallFrom, CallTo, Direction, Created, …) and the header `Exotel-Version: 1.0`, and validates the
  answer against that version: HTTP 200 and a JSON object whose `destination.numbers` is a list of numbers,
  with only the other fields of the page's sample answer, each of its shape (`validated` below);
- a non-200, a timeout (5 s here) or an answer that fails validation goes to the Fallback URL, if any; an empty
  `numbers`, or a fallback that fails too, takes the applet's "We didn't dial anyone" transition;
- a caller who hung up ends the flow: no Connect applet runs;
- the applet's outcomes are answered, no answer and busy (developer.exotel.com "Exotel Flow Builder"), each a
  transition set in the flow builder whatever the URL answers; `person` says which the dialled person gives.
  With `voicebot_after_no_answer`, no answer and busy lead to a second Voicebot applet with the same stream
  URL and credential (`voicebot_again`): a new stream of the same call. Its `CallSid` is assumed the same
  (it is the same call; Exotel's pages do not say), its `stream_sid` new.

Stricter than Exotel where its pages are silent: a `Content-Type` other than `application/json` fails (the
playback page requires it of its own URL), and so does a field the sample answer does not show, or a value of
one the pages do not name (which: beside `FIELDS`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes.carriers import CarrierCall

VERSION = "1.0"
TIMEOUT_SECONDS = 5.0
NUMBER = re.compile(r"\+?[0-9]{6,15}")


PERSON = ("answered", "no-answer", "busy")  # what the person dialled does: the applet's outcome


@dataclass
class ConnectOutcome:
    dialled: list[str]  # the numbers Exotel rang; empty: "We didn't dial anyone"
    why: str  # "dialled", "no_number", or why the answer was refused
    transition: str = "didnt-dial"  # the applet's transition taken: one of PERSON once it dialled
    asked: list[httpx.Request] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)


@dataclass
class ExotelFlow:
    connect_url: str  # the Connect applet's Primary URL, as the flow holds it
    fallback_url: str | None = None
    call_from: str = "+919876543210"
    call_to: str = "+918047491899"
    person: str = "answered"  # the dialled person's outcome, one of PERSON
    voicebot_after_no_answer: bool = False  # no answer and busy lead to a second Voicebot applet

    def params(self, call: CarrierCall) -> dict[str, str]:
        return {"CallSid": call.call_id, "CallFrom": self.call_from, "CallTo": self.call_to, "From": self.call_from,
                "To": self.call_to, "Direction": "incoming", "Created": "Mon, 30 Nov 2026 10:00:00",
                "DialCallDuration": "0", "StartTime": "2026-11-30 10:00:00", "EndTime": "1970-01-01 05:30:00",
                "CallType": "call-attempt", "flow_id": "123456", "CustomField": ""}

    async def after_the_bot(self, call: CarrierCall, timeout: float = 60) -> ConnectOutcome:
        """The flow once the bot's side closes the Voicebot stream: the Connect applet's GET and what it dials."""
        await call.wait_closed_by_bot(timeout)
        return await self.connect(call)

    async def connect(self, call: CarrierCall) -> ConnectOutcome:
        outcome = ConnectOutcome([], "no_number")
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, trust_env=False) as client:
            for url in (self.connect_url, self.fallback_url):
                if url is None:
                    break
                why, numbers = await self._ask(client, url, call, outcome)
                if why == "answered":
                    outcome.dialled, outcome.why = numbers, "dialled" if numbers else "no_number"
                    outcome.transition = self.person if numbers else "didnt-dial"
                    return outcome
                outcome.why = why
        return outcome

    def voicebot_again(self, call: CarrierCall, outcome: ConnectOutcome) -> CarrierCall:
        """The second Voicebot applet's stream, once the person did not answer (or was busy): the same call,
        URL and credential, a new stream. The caller opens it (`open`, `handshake`)."""
        if outcome.transition not in ("no-answer", "busy") or not self.voicebot_after_no_answer:
            raise AssertionError(f"the flow does not lead {outcome.transition!r} to a Voicebot applet")
        return CarrierCall(call.carrier, call.url, headers=call.headers, call_id=call.call_id,
                           stream_id=call.stream_id[:-1] + ("e" if call.stream_id.endswith("f") else "f"))

    async def _ask(self, client: httpx.AsyncClient, url: str, call: CarrierCall,
                   outcome: ConnectOutcome) -> tuple[str, list[str]]:
        try:
            answer = await client.get(url, params=self.params(call), headers={"Exotel-Version": VERSION})
        except httpx.TimeoutException:
            return "timeout", []
        outcome.asked.append(answer.request)
        outcome.answers.append(answer)
        if answer.status_code != 200:
            return f"status {answer.status_code}", []
        if answer.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return "not json", []
        try:
            body: Any = json.loads(answer.content)
        except ValueError:
            return "not json", []
        return validated(body)


# The sample answer's fields (support.exotel.com article 3000096873, "Response"), with the shape of each.
FIELDS = frozenset({"fetch_after_attempt", "destination", "outgoing_phone_number", "record", "recording_channels",
                    "max_ringing_duration", "max_conversation_duration", "music_on_hold", "start_call_playback"})
# `music_on_hold.type`: the sample's `operator_tone` only. `playback_to`: the sample's `both`, or `callee` (what
# public integrations send for a playback to the person alone; the stored copy of the page lists none). `type`:
# "Play dynamic text or audio from URL in connect applet"'s two; an `audio_url` on https only.
PLAYBACK_FIELDS = {"playback_to": {"both", "callee"}, "type": {"text", "audio_url"}}


def _seconds(value: Any, most: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0 and (most is None or value <= most)


def validated(body: Any) -> tuple[str, list[str]]:
    """("answered", the numbers to ring) for an answer the applet takes, else (why it refused it, [])."""
    if not isinstance(body, dict) or not isinstance(body.get("destination"), dict):
        return "no destination", []
    unknown = sorted(set(body) - FIELDS) + sorted(f"destination.{k}" for k in set(body["destination"]) - {"numbers"})
    if unknown:
        return f"unknown field {unknown[0]}", []
    numbers = body["destination"].get("numbers")
    if not isinstance(numbers, list) or not all(isinstance(n, str) and NUMBER.fullmatch(n) for n in numbers):
        return "numbers invalid", []
    for flag in ("fetch_after_attempt", "record"):
        if flag in body and not isinstance(body[flag], bool):
            return f"{flag} invalid", []
    if "outgoing_phone_number" in body and not (isinstance(body["outgoing_phone_number"], str)
                                                and NUMBER.fullmatch(body["outgoing_phone_number"])):
        return "outgoing_phone_number invalid", []
    if "recording_channels" in body and body["recording_channels"] not in ("single", "dual"):
        return "recording_channels invalid", []
    if "max_ringing_duration" in body and not _seconds(body["max_ringing_duration"]):
        return "max_ringing_duration invalid", []
    if "max_conversation_duration" in body and not _seconds(body["max_conversation_duration"], 14400):
        return "max_conversation_duration invalid", []
    if "music_on_hold" in body and body["music_on_hold"] != {"type": "operator_tone"}:
        return "music_on_hold invalid", []
    if "start_call_playback" in body and not _playback(body["start_call_playback"]):
        return "start_call_playback invalid", []
    return "answered", list(numbers)


def _playback(playback: Any) -> bool:
    if not isinstance(playback, dict) or set(playback) != {"playback_to", "type", "value"}:
        return False
    if any(not isinstance(playback[key], str) or playback[key] not in allowed
           for key, allowed in PLAYBACK_FIELDS.items()):
        return False
    value = playback["value"]
    return isinstance(value, str) and bool(value.strip()) and (playback["type"] == "text"
                                                               or value.startswith("https://"))
