"""A carrier webhook's signature, answered once across every region, not once per region.

A captured webhook is valid at every region: Telnyx signs only the timestamp and body, and behind
a front door (`PHONE_PUBLIC_URL` shared) Twilio's and Plivo's signed URL is the same everywhere.
Each region's replay record is its own store's, so each region would mint one more call token.
With several regions, the record of a signature's digest is therefore also claimed at its home:
the highest of `sha256(region name, digest)` among the regions of `REGIONS` (rendezvous hashing,
as an Idempotency-Key's home, dispatcher/regions/home.py), asked signed (`POST /regions/webhooks`)
within `SIGHTING_SECONDS`. The home keeps it under the same key as a webhook it was sent itself,
so either order is refused the second time. A home that does not answer leaves the region's own
record alone to decide (`None`) and is passed over for `REST_SECONDS`: a region down never stops
calls elsewhere. docs/regions.md ("Phone calls across regions").
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.regions.calls import REST_SECONDS
from dispatcher.regions.home import rendezvous_order
from dispatcher.regions.peers import ANSWER_SECONDS, Peers, region_client, signed_post
from dispatcher.regions.signing import RegionSigner

log = logging.getLogger("dispatcher.regions")

SIGHTINGS_PATH = "/regions/webhooks"
# Half a region's answer time: a webhook whose home and hand-off target both hang is still answered
# within about 1.5 s. A home that did not answer is passed over for REST_SECONDS.
SIGHTING_SECONDS = ANSWER_SECONDS / 2
MAX_SECONDS = 48 * 3600.0  # longer than any webhook signature is kept (25 h: dispatcher/phone/access.py)
DIGEST = re.compile(r"^[0-9a-f]{64}$")


def sighting_home(candidates: list[str], digest: str) -> str:
    """Where `digest` is recorded, among `candidates` (region names)."""
    return rendezvous_order(candidates, digest)[0]


class WebhookSightings:
    def __init__(self, peers: Peers, client: HttpClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._peers = peers
        self._regions = peers.regions
        self._signer = RegionSigner(self._regions)
        self._client = client or region_client()
        self._clock = clock
        self._resting: dict[str, float] = {}  # a home that did not answer → when it may be again

    def home(self, digest: str) -> str:
        """The region whose turn `digest` is: this one, or a peer not passed over just now."""
        # Every region, read or not yet (a webhook just after start-up is no exception), less one
        # that just failed to answer: a region down costs a refused connection, then nothing.
        now = self._clock()
        others = [name for name in self._peers.by_name if self._resting.get(name, 0.0) <= now]
        return sighting_home([self._regions.here, *others], digest)

    async def first_at_home(self, digest: str, seconds: float) -> bool | None:
        """Whether the home had not seen `digest` (it records it now); None when this region is the
        home (its own record decides) or the home did not answer."""
        home = self.home(digest)
        peer = self._peers.peer(home)
        if peer is None:
            return None
        data, why = await signed_post(self._client, self._signer, self._regions, home, peer.url, SIGHTINGS_PATH,
                                      {"key": digest, "seconds": seconds}, SIGHTING_SECONDS)
        first = data.get("first") if isinstance(data, Mapping) else None
        if not isinstance(first, bool):
            self._resting[home] = self._clock() + REST_SECONDS
            log.warning("regions: %s, a webhook's home, did not record it (%s): this region's record decides",
                        home, why)
            return None
        return first

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_sighting(data: object) -> tuple[str, float]:
    """A home's request body: (the signature's digest, how long to keep it), or 400."""
    seconds = data.get("seconds") if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping) or not DIGEST.fullmatch(str(data.get("key", ""))) \
            or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
        raise ApiError(400, "invalid_request", f"expected {{\"key\": <64 hex>, \"seconds\": 0 to {MAX_SECONDS:g}}}")
    return str(data["key"]), float(seconds)
