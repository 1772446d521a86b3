"""A change made in this region, pushed signed to every peer at once: the one push what travels
between regions shares (the releases' traffic, the runtime settings).

Each push is retried a few times while the peer does not answer, then left to the peer's next poll
of this region's state, which carries the same change (pulled). A peer that refuses it (a 4xx: it
holds a newer one, or finds it invalid) is never asked again: retrying would not change its mind.
"""

from __future__ import annotations

import asyncio
import logging

from dispatcher.outbound.http_client import HttpClient
from dispatcher.regions.peers import Peers, region_client, signed_post
from dispatcher.regions.signing import RegionSigner

log = logging.getLogger("dispatcher.regions")

PUSH_ATTEMPTS = 3  # then the peer's next poll of this region brings it the change
PUSH_BACKOFF_SECONDS = 0.25  # doubled after each attempt


class Pushes:
    """The pushes under way from this replica, to every peer of `peers`."""

    def __init__(self, peers: Peers, client: HttpClient | None = None) -> None:
        self._peers = peers
        self._signer = RegionSigner(peers.regions)
        # Built only where there is a peer to push to (Peers says why): a single region never loads its library.
        self._client = client or (region_client() if peers.by_name else None)
        self._under_way: set[asyncio.Task[None]] = set()

    def to_every_peer(self, path: str, payload: object, what: str) -> None:
        """Sends `payload` to `path` at every peer, each in a task of its own (`what`: the change, for the log)."""
        client = self._client
        if client is None:
            return  # a single region: no peer to tell
        for peer in self._peers.by_name.values():
            task = asyncio.get_running_loop().create_task(self._push(client, peer.name, peer.url, path, payload, what),
                                                          name=f"push-to-{peer.name}")
            self._under_way.add(task)
            task.add_done_callback(self._under_way.discard)

    async def _push(self, client: HttpClient, peer: str, url: str, path: str, payload: object, what: str) -> None:
        delay = PUSH_BACKOFF_SECONDS
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            data, why = await signed_post(client, self._signer, self._peers.regions, peer, url, path, payload)
            if data is not None or why.startswith("answered 4"):  # taken, or refused for good
                return
            if attempt < PUSH_ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("regions: %s did not take %s (%s); it gets it when it next answers", peer, what, why)

    async def aclose(self) -> None:
        for task in list(self._under_way):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
