"""What the session's services used, from Pipecat's own usage metrics, for the bot's `ended` report.

Pipecat's services count their own use (LLM prompt, completion and cache tokens, speech-to-speech
audio tokens among them; TTS characters; STT audio seconds) and push each count as a `MetricsFrame`
when the worker's `PipelineParams.enable_usage_metrics` is on. The host turns it on for every worker
the team's bot builds (`with_usage_metrics`, called from bot/watch.py) and adds this observer, which
sums the counts per service and model. The team's bot file is unchanged.

An observer sees a frame at each hop it is passed along; only its first push (the service that
counted it) is summed. The sums are bounded: at most `MAX_SERVICES` (kind, processor, model) rows,
past it the rest are summed into one row whose processor says so. A streaming STT counts its audio
only at its final transcripts and its stop, so audio after the last one is missing from a call cut
short (or killed): its `audio_seconds` are reported as at least the caller audio it sent its vendor
(docs/operations.md, "What a call costs"): counted where Pipecat's STTService counts it, after
dropping what a muted, unusable or reconnecting STT does not send (`_record_stt_audio_usage`,
pipecat 1.14), which the meter wraps on each streaming STT it sees a frame pushed to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import MetricsFrame
from pipecat.metrics.metrics import LLMUsageMetricsData, MetricsData, STTUsageMetricsData, TTSUsageMetricsData
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.worker import PipelineParams
from pipecat.services.stt_service import SegmentedSTTService, STTService

from botchannel.usage import COUNTS, MAX_NAME_CHARS
from botchannel.usage import MAX_ROWS as MAX_SERVICES

OVERFLOW = "(other services)"
LLM_COUNTS = COUNTS["llm"]  # LLMTokenUsage's counts (`total_tokens` is derived by the service, left out)


@dataclass
class ServiceUse:
    kind: str  # "llm", "tts" or "stt"
    processor: str
    model: str | None
    counts: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, amount: float) -> None:
        if amount:
            self.counts[name] = self.counts.get(name, 0) + amount

    def as_json(self) -> dict[str, Any]:
        counts = {name: round(value, 3) if isinstance(value, float) else value for name, value in self.counts.items()}
        return {"kind": self.kind, "processor": self.processor, "model": self.model, **counts}


class UsageMeter(BaseObserver):
    """Sums each service's usage metrics over the session (every worker of the process)."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[tuple[str, str, str | None], ServiceUse] = {}
        # A streaming STT's caller audio (processor → its model, seconds), which its vendor bills as streamed.
        self._streamed: dict[str, tuple[str | None, float]] = {}

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, MetricsFrame) and data.first_push:
            for item in data.frame.data:
                self.count(item)
        elif isinstance(data.destination, STTService) and not isinstance(data.destination, SegmentedSTTService):
            self.meter_sent(data.destination)  # a segmented one bills its segments: its metrics say them

    def meter_sent(self, stt: STTService) -> None:
        """Counts the audio `stt` sends its vendor from now on (once per service; its StartFrame
        comes before any audio)."""
        if "_record_stt_audio_usage" in vars(stt):
            return  # wrapped already
        recorded = stt._record_stt_audio_usage

        def sent(audio: bytes | bytearray) -> None:
            recorded(audio)
            if stt.sample_rate > 0:  # 16-bit mono PCM, as Pipecat's STTService counts it
                self.streamed(stt.name, stt.settings.model, len(audio) / (stt.sample_rate * 2))
        stt._record_stt_audio_usage = sent  # type: ignore[method-assign]

    def streamed(self, processor: str, model: object, seconds: float) -> None:
        """Caller audio a streaming STT sent its vendor (its row's lower bound)."""
        processor = processor[:MAX_NAME_CHARS]
        if processor not in self._streamed and len(self._streamed) >= MAX_SERVICES:
            return
        _, before = self._streamed.get(processor, (None, 0.0))
        self._streamed[processor] = (str(model)[:MAX_NAME_CHARS] if model else None, before + seconds)

    def count(self, item: MetricsData) -> None:
        if isinstance(item, LLMUsageMetricsData):
            row = self._row("llm", item)
            for name in LLM_COUNTS:
                value = getattr(item.value, name, None)
                if isinstance(value, int) and value > 0:
                    row.add(name, value)
        elif isinstance(item, TTSUsageMetricsData) and item.value > 0:
            self._row("tts", item).add("characters", item.value)
        elif isinstance(item, STTUsageMetricsData) and item.value.audio_seconds > 0:
            self._row("stt", item).add("audio_seconds", float(item.value.audio_seconds))

    def _row(self, kind: str, item: MetricsData) -> ServiceUse:
        processor, model = item.processor[:MAX_NAME_CHARS], (item.model or None) and str(item.model)[:MAX_NAME_CHARS]
        key = (kind, processor, model)
        if key not in self._rows and len(self._rows) >= MAX_SERVICES - 1:
            key = (kind, OVERFLOW, None)
        if key not in self._rows:
            self._rows[key] = ServiceUse(*key)
        return self._rows[key]

    def report(self) -> list[dict[str, Any]]:
        """The `ended` report's `usage`: one row per service and model, its counts so far, a
        streaming STT's audio seconds at least the caller audio it sent (the sums kept as
        counted: a later final transcript's count is not added twice)."""
        rows = [row.as_json() for row in self._rows.values() if row.counts]
        for processor, (model, seconds) in self._streamed.items():
            stt = [row for row in rows if row["kind"] == "stt" and row["processor"] == processor]
            missing = round(seconds - sum(row.get("audio_seconds", 0.0) for row in stt), 3)
            if missing <= 0:
                continue
            if stt:
                stt[-1]["audio_seconds"] = round(stt[-1].get("audio_seconds", 0.0) + missing, 3)
            elif len(rows) < MAX_SERVICES:
                rows.append(ServiceUse("stt", processor, model, {"audio_seconds": missing}).as_json())
        return rows


def with_usage_metrics(kwargs: dict[str, Any]) -> None:
    """A `PipelineWorker`'s keyword arguments with Pipecat's usage metrics on (a copy of the bot's own
    params, everything else as it set it)."""
    params = kwargs.get("params")
    if params is None:
        kwargs["params"] = PipelineParams(enable_usage_metrics=True)
    elif isinstance(params, PipelineParams) and not params.enable_usage_metrics:
        kwargs["params"] = params.model_copy(update={"enable_usage_metrics": True})
