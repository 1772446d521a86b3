"""A process's memory of ids it has seen, bounded: the newest `limit` kept, the oldest forgotten.

Providers remember a session's machine id (a task ARN, an instance name, a Fly machine and its app)
to save the provider a list call: the provider's own records (tags, labels, metadata) stay the
truth, so a forgotten entry costs one list when it is asked about again, which for a session ended
long ago is rare. Unbounded, these maps grow with every session a dispatcher ever served.

A process's other per-session memories are bounded by it too: the reports a bot passed on
(dispatcher/channel/report_caps.py) and what a timeline notes once (dispatcher/sessions/noted_once.py).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

IDS_KEPT = 100_000  # a few MB of ids per map: days of sessions at 60 a minute


class Recent(MutableMapping[K, V]):
    """A mapping that keeps its `limit` most recently written keys (insertion order; a write moves
    a key to the newest end)."""

    def __init__(self, limit: int = IDS_KEPT) -> None:
        if limit < 1:
            raise ValueError("a Recent map keeps at least one key")
        self.limit = limit
        self._items: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.limit:
            del self._items[next(iter(self._items))]

    def __delitem__(self, key: K) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
