"""What OpenAI's Realtime server accepts in a `session.update` (the GA `session` object,
platform.openai.com/docs/api-reference/realtime-client-events/session/update): any other field is
refused with `unknown_parameter` naming it (`session.audio.input.foo`), a missing `session.type`
with `missing_required_parameter`, a wrong value with `invalid_value`. `reasoning` is taken only
by the reasoning models (`gpt-realtime-2*`); the others refuse the whole update."""

from __future__ import annotations

from typing import Any

SESSION_FIELDS = {
    "type",
    "model",
    "output_modalities",
    "instructions",
    "audio",
    "include",
    "tracing",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "truncation",
    "prompt",
    "reasoning",
}
AUDIO_FIELDS = {"input", "output"}
INPUT_FIELDS = {"format", "transcription", "noise_reduction", "turn_detection"}
OUTPUT_FIELDS = {"format", "voice", "speed"}
NESTED_FIELDS = {"transcription": {"model", "language", "prompt"}, "noise_reduction": {"type"}}
TURN_FIELDS = {
    "server_vad": {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "idle_timeout_ms",
    },
    "semantic_vad": {"type", "eagerness", "create_response", "interrupt_response"},
}
FORMATS = {"audio/pcm", "audio/pcmu", "audio/pcma"}
MODALITIES = ({"audio"}, {"text"})

Problem = tuple[str, str, str]  # code, message, param


def unknown(param: str) -> Problem:
    return "unknown_parameter", f"Unknown parameter: '{param}'.", param


def invalid(param: str, value: Any, expected: str) -> Problem:
    return "invalid_value", f"Invalid value: {value!r}. {expected}", param


def session_problem(session: Any, model: str) -> Problem | None:
    if not isinstance(session, dict):
        return "invalid_type", "Invalid type for 'session': expected an object.", "session"
    if "type" not in session:
        return "missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type"
    if session["type"] != "realtime":
        return invalid("session.type", session["type"], "Supported values are: 'realtime' and 'transcription'.")
    for key in session:
        if key not in SESSION_FIELDS:
            return unknown(f"session.{key}")
    if "reasoning" in session and "gpt-realtime-2" not in model:
        return (
            "unsupported_parameter",
            f"Unsupported parameter: 'session.reasoning' is not supported with {model}.",
            "session.reasoning",
        )
    modalities = session.get("output_modalities")
    if modalities is not None and set(modalities) not in MODALITIES:
        return invalid("session.output_modalities", modalities, "Supported combinations are: ['text'] and ['audio'].")
    return audio_problem(session.get("audio"))


def audio_problem(audio: Any) -> Problem | None:
    if audio is None:
        return None
    for key in audio:
        if key not in AUDIO_FIELDS:
            return unknown(f"session.audio.{key}")
    for side, fields in (("input", INPUT_FIELDS), ("output", OUTPUT_FIELDS)):
        part = audio.get(side) or {}
        for key in part:
            if key not in fields:
                return unknown(f"session.audio.{side}.{key}")
        for name, allowed in NESTED_FIELDS.items():
            for key in part.get(name) or {}:
                if key not in allowed:
                    return unknown(f"session.audio.{side}.{name}.{key}")
        found = format_problem(part.get("format"), f"session.audio.{side}.format")
        if found:
            return found
    return turn_problem((audio.get("input") or {}).get("turn_detection"))


def format_problem(fmt: Any, param: str) -> Problem | None:
    if fmt is None:
        return None
    if fmt.get("type") not in FORMATS:
        return invalid(
            f"{param}.type", fmt.get("type"), "Supported values are: 'audio/pcm', 'audio/pcmu' and 'audio/pcma'."
        )
    if fmt["type"] == "audio/pcm" and fmt.get("rate", 24000) != 24000:
        return invalid(f"{param}.rate", fmt.get("rate"), "Supported values are: 24000.")
    for key in fmt:
        if key not in {"type", "rate"}:
            return unknown(f"{param}.{key}")
    return None


def turn_problem(turn: Any) -> Problem | None:
    if turn is None:
        return None
    fields = TURN_FIELDS.get(turn.get("type"))
    if fields is None:
        param = "session.audio.input.turn_detection.type"
        return invalid(param, turn.get("type"), "Supported values are: 'server_vad' and 'semantic_vad'.")
    for key in turn:
        if key not in fields:
            return unknown(f"session.audio.input.turn_detection.{key}")
    return None
