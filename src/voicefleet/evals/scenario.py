"""A scenario: what a simulated caller says, turn by turn, and what each answer must be.

Scenarios are TOML files a team keeps beside its bot (`scenarios/*.toml`), one call each, typed by
the models below; `voicefleet eval --schema` prints their JSON Schema for an editor. An unknown
field is refused with the nearest known one, so a typo never turns an expectation off silently.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from voicefleet.loadtest.sip_uri import sip_uri

# WebRTC, where the caller reads the bot's RTVI text events, and the media streams of every carrier the
# dispatcher takes, which the load test's phone caller speaks each in its own messages
# (loadtest/carrier_frames.py), where it reads the session's transcript. Every one of them also carries
# the keys a caller presses, as `dtmf` events on its bidirectional stream (docs/evals.md). And a SIP call
# through the SIP edge (loadtest/sip_line.py): G.711 RTP, its keys RFC 4733 events, its words the transcript.
PHONE_TRANSPORTS = ("twilio", "telnyx", "plivo", "exotel", "sip")
# A WhatsApp call: WebRTC with audio alone, as WhatsApp's media servers offer it, so no RTVI events either:
# its words too come from the transcript (loadtest/whatsapp_line.py). Its keys (RFC 4733 in
# its audio) the caller does not send yet.
AUDIO_ONLY = (*PHONE_TRANSPORTS, "whatsapp")
TRANSPORTS = ("webrtc", *AUDIO_ONLY)
MAX_TURNS = 50
MAX_SCENARIOS = 500
MAX_RUBRIC = 2000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(Strict):
    """What one answer of the bot must be. Text is compared case-insensitively, as words."""

    contains: list[str] = Field(default_factory=list, description="Words or phrases the answer must hold.")
    not_contains: list[str] = Field(default_factory=list, description="Words or phrases it must not hold.")
    matches: str | None = Field(default=None, description="A regular expression the answer must match.")
    within_ms: Annotated[int, Field(gt=0, le=60_000)] | None = Field(
        default=None, description="The answer's first audio begins within this many ms of the caller's end of speech.")
    silent: bool = Field(default=False, description="The bot must say nothing to this turn.")
    rubric: str | None = Field(default=None, min_length=1, max_length=MAX_RUBRIC, description=(
        "A yes/no question an LLM judge answers about the call so far (optional: judged only with "
        "--judge-url and --judge-model; the deterministic checks decide without it)."))

    @field_validator("contains", "not_contains")
    @classmethod
    def _words_in_each(cls, phrases: list[str]) -> list[str]:
        # An empty phrase is found in no answer (so `contains` could never pass) and `not_contains`
        # would never fail: either way a check that does not check, refused rather than kept.
        if any(not re.search(r"[A-Za-z0-9]", phrase) for phrase in phrases):
            raise ValueError("a phrase holds no word: write the words to look for, or leave the list out")
        return phrases

    @field_validator("matches")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a regular expression ({error})") from None
        return pattern

    @model_validator(mode="after")
    def _silent_alone(self) -> Expect:
        if self.silent and (self.contains or self.matches or self.within_ms):
            raise ValueError("an answer expected to be silent cannot also hold text or begin in time")
        return self


class Turn(Strict):
    """One thing the caller says (text spoken by a local voice, or a 16 kHz WAV of yours) or the keys it
    presses on a phone call, then waits."""

    say: str | None = Field(default=None, description="Text the caller's voice speaks.")
    wav: str | None = Field(default=None, description="A 16-bit PCM WAV the caller plays, relative to the file.")
    dtmf: Annotated[str, Field(pattern=r"^[0-9*#]{1,32}$")] | None = Field(default=None, description=(
        "Keys the caller presses (0-9, * and #), sent as the carrier's DTMF events: on a phone call only."))
    expect: Expect = Field(default_factory=Expect)
    listen_ms: Annotated[int, Field(gt=0, le=120_000)] = Field(
        default=15_000, description="How long the caller waits for the answer; one still coming then is heard out.")

    @model_validator(mode="after")
    def _one_source(self) -> Turn:
        if sum(source is not None for source in (self.say, self.wav, self.dtmf)) != 1:
            raise ValueError("a turn takes exactly one of say = \"...\", wav = \"file.wav\" or dtmf = \"1#\"")
        return self

    @property
    def said(self) -> str:
        """The turn as a report names it: its text, its WAV, or the keys pressed."""
        return self.say or self.wav or f"keys {self.dtmf}"


class CallExpect(Strict):
    """What the call as a whole must show."""

    greeting: Expect | None = Field(default=None, description="The bot's first words, before the caller speaks.")
    bot_ends: bool | None = Field(default=None,
                                  description="true: the bot hangs up after the last turn; false: it must not.")
    no_error: bool = Field(default=True, description="The session records no error.")
    rubric: str | None = Field(default=None, min_length=1, max_length=MAX_RUBRIC, description=(
        "A yes/no question an LLM judge answers about the whole call (optional, as a turn's rubric)."))


class Scenario(Strict):
    name: str = Field(min_length=1, max_length=120)
    transport: Literal["webrtc", "twilio", "telnyx", "plivo", "exotel", "sip", "whatsapp"] = Field(
        default="webrtc", description=(
            "How the call is placed: webrtc, or a carrier's media stream as that carrier opens it: twilio (Media "
            "Streams), telnyx (media streaming), plivo (audio streams) or exotel (the Voicebot applet); sip, a "
            "SIP call through the SIP edge at sip_uri; or whatsapp, a WhatsApp call to whatsapp_number."))
    sip_uri: str | None = Field(default=None, description=(
        "transport = \"sip\": the SIP edge and a number its trunk serves, sip:NUMBER@HOST:PORT (or --sip-uri)."))
    whatsapp_number: Annotated[str, Field(pattern=r"^[0-9]{1,32}$")] | None = Field(default=None, description=(
        "transport = \"whatsapp\": the phone number ID called (WHATSAPP_NUMBERS); default: the API key's one number."))
    turns: list[Turn] = Field(min_length=1, max_length=MAX_TURNS)
    call: CallExpect = Field(default_factory=CallExpect)
    source: str = Field(default="", exclude=True, description="The file it was read from (set by the loader).")

    @model_validator(mode="after")
    def _keys_on_a_phone(self) -> Scenario:
        if self.transport not in PHONE_TRANSPORTS and any(turn.dtmf is not None for turn in self.turns):
            carriers = ", ".join(f'"{name}"' for name in PHONE_TRANSPORTS[:-1]) + f' or "{PHONE_TRANSPORTS[-1]}"'
            raise ValueError(f"dtmf is pressed on a phone call only: set transport = {carriers}")
        return self

    @field_validator("sip_uri")
    @classmethod
    def _a_sip_uri(cls, uri: str | None) -> str | None:
        return None if uri is None else sip_uri(uri).uri

    @model_validator(mode="after")
    def _sip_uri_for_sip(self) -> Scenario:
        if self.sip_uri is not None and self.transport != "sip":
            raise ValueError('sip_uri is where a SIP call goes: set transport = "sip", or leave sip_uri out')
        return self

    @model_validator(mode="after")
    def _whatsapp_number_for_whatsapp(self) -> Scenario:
        if self.whatsapp_number is not None and self.transport != "whatsapp":
            raise ValueError('whatsapp_number is the number a WhatsApp call goes to: set transport = "whatsapp", '
                             "or leave whatsapp_number out")
        return self

    @property
    def on_phone(self) -> bool:
        """Whether the call carries audio alone (a phone line, a WhatsApp call): words from the transcript."""
        return self.transport in AUDIO_ONLY

    def reads_words(self) -> bool:
        """Whether a check needs the bot's words, not only its audio (contains, matches, a rubric)."""
        expects = [turn.expect for turn in self.turns] + [e for e in (self.call.greeting,) if e is not None]
        return self.call.rubric is not None or any(
            e.contains or e.not_contains or e.matches is not None or e.rubric is not None for e in expects)


class ScenarioError(ValueError):
    """A scenario file that cannot be used: its path, the field and what to do, on one line each."""


def load_suite(path: Path) -> list[Scenario]:
    """Every scenario of a file or of a folder's `*.toml` files, in name order."""
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        raise ScenarioError(f"{path}: no scenario files (*.toml) in this folder")
    if len(files) > MAX_SCENARIOS:
        raise ScenarioError(f"{path}: {len(files)} scenario files; a suite holds at most {MAX_SCENARIOS}")
    scenarios = [load_scenario(file) for file in files]
    names = [s.name for s in scenarios]
    if doubled := sorted({n for n in names if names.count(n) > 1}):
        raise ScenarioError(f"{path}: two scenarios are named {doubled[0]!r}: a name says which call failed")
    return scenarios


def load_scenario(file: Path) -> Scenario:
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{file}: cannot be read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{file}: not TOML ({error})") from None
    data.setdefault("name", file.stem.replace("_", " "))
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError("\n".join(_explain(file, problem) for problem in error.errors())) from None
    for turn in scenario.turns:
        if turn.wav is not None and not (file.parent / turn.wav).is_file():
            raise ScenarioError(f"{file}: wav {turn.wav!r} is not a file beside the scenario")
    return scenario.model_copy(update={"source": str(file)})


def _explain(file: Path, problem: ErrorDetails) -> str:
    location = [str(part) for part in problem["loc"]]
    where = ".".join(location) or "(the file)"
    if problem.get("type") == "extra_forbidden":
        known = _fields_at(location[:-1])
        nearest = difflib.get_close_matches(location[-1], known, n=1)
        hint = f"; did you mean {nearest[0]!r}?" if nearest else f"; known here: {', '.join(sorted(known))}"
        return f"{file}: {where}: unknown field{hint}"
    if problem.get("type") == "model_type" and problem.get("ctx", {}).get("class_name") == "Expect":
        given = problem.get("input")
        phrase = json.dumps(given if isinstance(given, str) else "…", ensure_ascii=False)
        return (f"{file}: {where}: an expectation is a table of checks, not {given!r}: write "
                f"{location[-1]} = {{ contains = [{phrase}] }} (or matches, not_contains, within_ms, silent)")
    return f"{file}: {where}: {problem.get('msg')}"


def _fields_at(location: list[str]) -> list[str]:
    """The field names of the model at a location such as ['turns', '0', 'expect']."""
    model: type[BaseModel] = Scenario
    for part in location:
        if part.isdigit():
            continue
        annotation = model.model_fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = next((a for a in inner if issubclass(a, BaseModel)), None)
        if nested is None:
            break
        model = nested
    return [name for name in model.model_fields if name != "source"]


def schema() -> dict[str, object]:
    return Scenario.model_json_schema()
