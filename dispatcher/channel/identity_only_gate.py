"""How many credential-less sockets may wait on their hello's check, and how often one address may open one.

A socket with no credential (a Kubernetes agent-sandbox pool bot's: dispatcher/channel/identity.py,
`IdentityOnly`) is let through the handshake before anything proves it is a bot, so whoever reaches
the channel could open many and make each cost a check. Until its hello is admitted it holds one of
`most` pending places of its own (BOT_CHANNEL_MAX_IDENTITY_ONLY), never one of the credentialed bots'
channels (BOT_CHANNEL_MAX_CONNECTIONS); once admitted it is a bot like any other and takes a channel
(dispatcher/api/routers/bots.py). One remote address may open `per_address` such sockets per
WINDOW_SECONDS (BOT_CHANNEL_IDENTITY_ONLY_PER_ADDRESS, PER_ADDRESS by default): a pool bot dials once and
holds its channel (its pod has an address of its own), so more is a flood, refused with a close reason
that says so; pods that reach the channel through one address (an ingress, SNAT) need it raised.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

PER_ADDRESS = 5
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000  # addresses remembered at once (the oldest forgotten first): bounded memory


class IdentityOnlyGate:
    def __init__(self, most: int, *, per_address: int = PER_ADDRESS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.most, self.pending, self.per_address = most, 0, per_address
        self._clock = clock
        self._opened: OrderedDict[str, deque[float]] = OrderedDict()  # address → its recent sockets' times

    def refusal(self, address: str | None) -> str | None:
        """Why a credential-less socket from `address` is refused now, or None: it then holds a pending
        place until `release`."""
        now, key = self._clock(), address or "unknown"
        opened = self._opened.pop(key, deque())
        while opened and opened[0] <= now - WINDOW_SECONDS:
            opened.popleft()
        self._opened[key] = opened  # the newest address last: the oldest is forgotten first
        while len(self._opened) > MAX_ADDRESSES:
            self._opened.popitem(last=False)
        if len(opened) >= self.per_address:
            return (f"over {self.per_address} credential-less dials from this address in {WINDOW_SECONDS:g} s "
                    "(BOT_CHANNEL_IDENTITY_ONLY_PER_ADDRESS); dial later")
        if self.pending >= self.most:
            # Not counted against the address: it cost no check, and counting it would let a flood from
            # elsewhere spend a real bot's few dials a minute while it waits for a place.
            return "too many credential-less hellos being checked (BOT_CHANNEL_MAX_IDENTITY_ONLY); dial later"
        opened.append(now)
        self.pending += 1
        return None

    def release(self) -> None:
        """A pending socket's hello was admitted, or it closed."""
        self.pending = max(0, self.pending - 1)
