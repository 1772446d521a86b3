"""The phone calls' own metrics, in the app's registry (dispatcher/observability/metrics.py)."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

from dispatcher.observability.metric_catalogue import FIRST_AUDIO_BUCKETS
from dispatcher.phone.relay import CARRIER_OVER_RATE, OVER_RATE, CallStats

MediaPath = Literal["direct", "store"]


class PhoneMetrics:
    def __init__(self, registry: CollectorRegistry, provider: str) -> None:
        self.provider = provider
        self._first_audio = Histogram(
            "voicefleet_phone_first_bot_audio_seconds",
            "A call's carrier WebSocket open to the bot's first frame sent to the carrier, by media "
            "path (the bot's media socket at the carrier's replica, or at another one through the store).",
            ["provider", "media", "release"],
            buckets=FIRST_AUDIO_BUCKETS,
            registry=registry,
        )
        self._over_rate = Counter(
            "voicefleet_phone_frame_rate_closes",
            "Calls ended because one side sent more than PHONE_MAX_FRAMES_PER_SECOND frames a second "
            "(its socket closed with 1008), by side: the caller's (carrier's or client's) or the bot's.",
            ["provider", "side"],
            registry=registry,
        )

    def call_ended(self, stats: CallStats, *, media: MediaPath, release: str) -> None:
        if stats.first_bot_frame is not None:
            self._first_audio.labels(self.provider, media, release).observe(stats.first_bot_frame - stats.opened)
        if stats.ended_by in OVER_RATE:
            self._over_rate.labels(self.provider, "caller" if stats.ended_by == CARRIER_OVER_RATE else "bot").inc()
