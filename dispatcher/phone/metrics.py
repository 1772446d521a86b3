"""The phone calls' own metrics, in the app's registry (dispatcher/metrics.py)."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Histogram

from dispatcher.metric_catalogue import FIRST_AUDIO_BUCKETS
from dispatcher.phone.relay import CallStats

MediaPath = Literal["direct", "store"]


class PhoneMetrics:
    def __init__(self, registry: CollectorRegistry, provider: str) -> None:
        self.provider = provider
        self._first_audio = Histogram(
            "voicefleet_phone_first_bot_audio_seconds",
            "A call's carrier WebSocket open to the bot's first frame sent to the carrier, by media "
            "path (the bot's media socket at the carrier's replica, or at another one through the store).",
            ["provider", "media"],
            buckets=FIRST_AUDIO_BUCKETS,
            registry=registry,
        )

    def call_ended(self, stats: CallStats, *, media: MediaPath) -> None:
        if stats.first_bot_frame is not None:
            self._first_audio.labels(self.provider, media).observe(stats.first_bot_frame - stats.opened)
