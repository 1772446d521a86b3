"""Counts of wrong secrets over a sliding window, bounded in memory, and the client groups they are kept by.

A guesser who rotates addresses must not escape the count: an IPv6 client is counted by its /64 (one
subscriber's block, which it can walk freely), and the caller also counts per secret id across every
address. The keys remembered are bounded (the oldest forgotten first) so a flood of new addresses
cannot grow this replica's memory.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

IPV6_GROUP_BITS = 64


def client_group(source: str) -> str:
    """The address wrong secrets are counted under: an IPv6 address's /64, any other address itself."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_GROUP_BITS}", strict=False))
    return str(address)


class WindowCounts:
    """How many events each key had within the last `window` seconds, for at most `most` keys."""

    def __init__(self, window: float, most: int, clock: Callable[[], float]) -> None:
        self._window, self._most, self._clock = window, most, clock
        self._times: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def count(self, key: Hashable) -> int:
        times = self._times.get(key)
        if not times:
            return 0
        while times and times[0] <= self._clock() - self._window:
            times.popleft()
        return len(times)

    def oldest(self, key: Hashable) -> float | None:
        times = self._times.get(key)
        return times[0] if times else None

    def add(self, key: Hashable) -> None:
        self._times.setdefault(key, deque()).append(self._clock())
        self._times.move_to_end(key)
        while len(self._times) > self._most:
            self._times.popitem(last=False)

    def keep(self, wanted: Callable[[Hashable], bool]) -> None:
        """Forgets every key `wanted` refuses (e.g. those of a revoked secret)."""
        for key in [k for k in self._times if not wanted(k)]:
            del self._times[key]

    def __len__(self) -> int:
        return len(self._times)
