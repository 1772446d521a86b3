"""How long each hosted speech-to-speech vendor lets one session (or connection) last, and whether the
pinned Pipecat carries a call past it itself. Figures from the vendors' pages and reported practice
(docs/converged.md cites each); `module` is where Pipecat 1.14 keeps the service. A vendor may have two
caps (Gemini Live: its connection's, which Pipecat resumes past, and its session's without context
window compression, which nothing carries a call past); `lifted_by` names the bot's setting that
lifts one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealtimeCap:
    vendor: str
    service: str  # the Pipecat service class
    module: str  # the Pipecat package the service lives in: a bot importing under it uses the vendor
    cap_seconds: int
    pipecat_continues: bool  # Pipecat reconnects or resumes by itself, so the call outlives the cap
    source: str
    limit: str = ""  # what the cap is of, where not the whole session, in the notes' words
    # The service's keyword whose use in the bot's own code lifts the cap (its setting turned on).
    lifted_by: str | None = None


CAPS: tuple[RealtimeCap, ...] = (
    RealtimeCap("OpenAI Realtime", "OpenAIRealtimeLLMService", "pipecat.services.openai.realtime", 3600, False,
                "https://strandsagents.com/docs/api/python/strands.experimental.bidi.models.openai_realtime/"),
    RealtimeCap("xAI Grok Voice", "GrokRealtimeLLMService", "pipecat.services.xai.realtime", 1800, False,
                "https://docs.x.ai/developers/models/voice-agent-api"),
    RealtimeCap("Gemini Live", "GeminiLiveLLMService", "pipecat.services.google.gemini_live", 600, True,
                "https://ai.google.dev/gemini-api/docs/live-session",
                "per connection, a goAway about 60 s before; a resumption handle lasts 2 hours"),
    RealtimeCap("Gemini Live", "GeminiLiveLLMService", "pipecat.services.google.gemini_live", 900, False,
                "https://ai.google.dev/gemini-api/docs/live-session",
                "an audio-only session without context window compression", "context_window_compression"),
    RealtimeCap("AWS Nova Sonic", "AWSNovaSonicLLMService", "pipecat.services.aws.nova_sonic", 480, True,
                "https://docs.aws.amazon.com/guidance/latest/agentic-vehicle-experience-on-aws/nova-sonic-voice.md"),
)  # fmt: skip


def caps_of(modules: set[str] | frozenset[str]) -> list[RealtimeCap]:
    """The vendors whose Pipecat service a bot imports, given every module it imports (dotted)."""
    return [cap for cap in CAPS if any(m == cap.module or m.startswith(cap.module + ".") for m in modules)]
