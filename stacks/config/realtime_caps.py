"""How long each hosted speech-to-speech vendor lets one session (or connection) last, and whether the
pinned Pipecat carries a call past it itself. Figures from the vendors' pages and reported practice
(docs/converged.md cites each); `module` is where Pipecat 1.14 keeps the service."""

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


CAPS: tuple[RealtimeCap, ...] = (
    RealtimeCap("OpenAI Realtime", "OpenAIRealtimeLLMService", "pipecat.services.openai.realtime", 3600, False,
                "https://strandsagents.com/docs/api/python/strands.experimental.bidi.models.openai_realtime/"),
    RealtimeCap("xAI Grok Voice", "GrokRealtimeLLMService", "pipecat.services.xai.realtime", 1800, False,
                "https://docs.x.ai/developers/models/voice-agent-api"),
    RealtimeCap("Gemini Live", "GeminiLiveLLMService", "pipecat.services.google.gemini_live", 600, True,
                "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/live-api/start-manage-session"),
    RealtimeCap("AWS Nova Sonic", "AWSNovaSonicLLMService", "pipecat.services.aws.nova_sonic", 480, True,
                "https://docs.aws.amazon.com/guidance/latest/agentic-vehicle-experience-on-aws/nova-sonic-voice.md"),
)  # fmt: skip


def caps_of(modules: set[str] | frozenset[str]) -> list[RealtimeCap]:
    """The vendors whose Pipecat service a bot imports, given every module it imports (dotted)."""
    return [cap for cap in CAPS if any(m == cap.module or m.startswith(cap.module + ".") for m in modules)]
