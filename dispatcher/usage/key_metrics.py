"""Per-key usage in `/metrics`: ended sessions, their minutes and their cost, by key, with bounded
cardinality. Keys are named by the deployment, but runtime keys can be added at will: past
`MAX_KEYS` distinct keys in this process, the rest are summed under `key="(other)"`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

MAX_KEYS = 100
OTHER_KEY = "(other)"  # no key name can take it


class KeyUsageMetrics:
    def __init__(self, registry: CollectorRegistry, max_keys: int = MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._keys: set[str] = set()
        self._sessions = Counter("voicefleet_key_sessions", "Ended sessions, by API key name (bounded: `(other)`).",
                                 ["key"], registry=registry)
        self._seconds = Counter("voicefleet_key_session_seconds",
                                "Ended sessions' seconds (launch or claim to end), by API key name.",
                                ["key"], registry=registry)
        self._dollars = Counter("voicefleet_key_cost_dollars",
                                "Ended sessions' priced cost in USD (machine and priced services), by API key name.",
                                ["key"], registry=registry)

    def label(self, key: str) -> str:
        if key in self._keys or len(self._keys) < self._max_keys:
            self._keys.add(key)
            return key
        return OTHER_KEY

    def ended(self, key: str, *, seconds: float, dollars: float) -> None:
        label = self.label(key)
        self._sessions.labels(label).inc()
        self._seconds.labels(label).inc(seconds)
        self._dollars.labels(label).inc(dollars)
