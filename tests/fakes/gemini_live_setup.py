"""What Gemini Live's server accepts in a client message (ai.google.dev/api/live,
`BidiGenerateContentClientMessage`): exactly one of `setup`, `clientContent`, `realtimeInput`,
`toolResponse`, and in `setup` and its `generationConfig` only the fields the protocol defines. The
server parses each message as its protobuf: a name it does not know closes the connection with 1007
and `Invalid JSON payload received. Unknown name "x" at 'setup.generation_config': Cannot find
field.` (the path in the proto's snake_case). Like any protobuf JSON parser it takes a field by its JSON
name (`generationConfig`) or its proto name (`generation_config`): the SDK sends both kinds."""

from __future__ import annotations

import re
from typing import Any

SETUP_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"

Refusal = tuple[int, str]  # the close: code, reason

CLIENT_MESSAGES = {"setup", "clientContent", "realtimeInput", "toolResponse"}
SETUP_FIELDS = {
    "model",
    "generationConfig",
    "systemInstruction",
    "tools",
    "realtimeInputConfig",
    "sessionResumption",
    "contextWindowCompression",
    "inputAudioTranscription",
    "outputAudioTranscription",
    "proactivity",
    "historyConfig",
    "safetySettings",
    "avatarConfig",
}
GENERATION_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
    "enableAffectiveDialog",
}
RESUMPTION_FIELDS = {"handle", "transparent"}
REALTIME_INPUT_FIELDS = {"mediaChunks", "audio", "video", "text", "activityStart", "activityEnd", "audioStreamEnd"}


def snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def value(message: dict[str, Any], name: str) -> Any:
    """A field by its JSON name or its proto name (`name` is the JSON one)."""
    return message.get(name, message.get(snake(name)))


def unknown_field(name: str, at: str) -> Refusal:
    where = f" at '{at}'" if at else ""
    return 1007, f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'


def _unknown_in(message: Any, allowed: set[str], at: str) -> Refusal | None:
    if not isinstance(message, dict):
        return 1007, f"Invalid value at '{at}', expected an object."
    for name in message:
        if camel(name) not in allowed:
            return unknown_field(name, at)
    return None


def client_message_problem(message: Any) -> Refusal | None:
    found = _unknown_in(message, CLIENT_MESSAGES, "")
    if found:
        return found
    if len(message) != 1:
        return 1007, "Request contains an invalid argument."
    realtime = value(message, "realtimeInput")
    if realtime is not None:
        return _unknown_in(realtime, REALTIME_INPUT_FIELDS, "realtime_input")
    return None


def setup_problem(setup: Any) -> Refusal | None:
    found = _unknown_in(setup, SETUP_FIELDS, "setup")
    if found:
        return found
    if not setup.get("model"):
        return 1007, "Request contains an invalid argument."
    for name, allowed in (("generationConfig", GENERATION_FIELDS), ("sessionResumption", RESUMPTION_FIELDS)):
        part = value(setup, name)
        if part is not None:
            found = _unknown_in(part, allowed, f"setup.{snake(name)}")
            if found:
                return found
    return None
