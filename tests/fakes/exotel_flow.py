"""Exotel's side of an App Bazaar flow "Voicebot applet → Connect applet (dynamic URL)", as Exotel documents
it (support.exotel.com "Programmable Connect: Working with Connect Applet (Dynamic URL)"; developer.exotel.com
"Connect Voice AI with Flow": "Bot → Connect (human)"):

- the Voicebot applet streams the call (tests/fakes/carriers.py `CarrierCall`, Exotel's shape, with the
  Basic credential); when the stream is closed by the bot's side, the flow moves on to the next applet;
- the Connect applet GETs its Primary URL with the call's details as URL-encoded query parameters
  (CallSid, CallFrom, CallTo, Direction, Created, …) and the header `Exotel-Version: 1.0`, and validates the
  answer against that version: HTTP 200 and a JSON object whose `destination.numbers` is a list of numbers
  (`fetch_after_attempt` a boolean, `max_conversation_duration` a positive integer, when given);
- a non-200, a timeout (5 s here) or an answer that fails validation goes to the Fallback URL, if any; an empty
  `numbers`, or a fallback that fails too, takes the applet's "We didn't dial anyone" transition;
- a caller who hung up ends the flow: no Connect applet runs.

Stricter than Exotel where its pages are silent: a `Content-Type` other than `application/json` fails.
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


@dataclass
class ConnectOutcome:
    dialled: list[str]  # the numbers Exotel rang; empty: "We didn't dial anyone"
    why: str  # "dialled", "no_number", or why the answer was refused
    asked: list[httpx.Request] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)


@dataclass
class ExotelFlow:
    connect_url: str  # the Connect applet's Primary URL, as the flow holds it
    fallback_url: str | None = None
    call_from: str = "+919876543210"
    call_to: str = "+918047491899"

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
                    return outcome
                outcome.why = why
        return outcome

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
        return _validated(body)


def _validated(body: Any) -> tuple[str, list[str]]:
    if not isinstance(body, dict) or not isinstance(body.get("destination"), dict):
        return "no destination", []
    numbers = body["destination"].get("numbers")
    if not isinstance(numbers, list) or not all(isinstance(n, str) and NUMBER.fullmatch(n) for n in numbers):
        return "numbers invalid", []
    if "fetch_after_attempt" in body and not isinstance(body["fetch_after_attempt"], bool):
        return "fetch_after_attempt invalid", []
    limit = body.get("max_conversation_duration")
    if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit <= 14400):
        return "max_conversation_duration invalid", []
    return "answered", list(numbers)
