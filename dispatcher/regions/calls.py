"""A carrier's call handed to another region: that region's stream URL for it, asked for signed.

A region whose carrier webhook cannot start the call's bot warm asks the chosen peer
(`POST /regions/calls`, signed with `REGION_SECRET` like every region request) to mint the call's
one-time stream token there; the peer answers, signed, with its own `wss://…/ws/{carrier}/{token}`
and the session id the call will have (its tag names the peer). A stream at another host or port
than the peer's `REGIONS` URL, or for another carrier, is not taken (`streams_to`). The carrier is
then told that URL, so the call's audio goes to the peer directly. Any failure (no answer within
`ANSWER_SECONDS`, a refusal, an unsigned answer) is `None`: the call is answered here, as when no
region has room, and that peer is not asked again for `REST_SECONDS`. docs/regions.md ("Phone
calls across regions").
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.regions.peers import ANSWER_SECONDS, Peer, Peers, region_client
from dispatcher.regions.signing import RegionSigner, answer_is_signed

log = logging.getLogger("dispatcher.regions")

CALLS_PATH = "/regions/calls"
REST_SECONDS = 5.0  # a peer that did not take a call is not asked again for this long


@dataclass(frozen=True)
class HandedCall:
    region: str
    stream_url: str  # wss://<the peer>/ws/{carrier}/{token}: what the carrier is told
    session_id: str


def streams_to(peer_url: str, carrier: str, stream: str) -> bool:
    """Whether `stream` is `carrier`'s stream at the peer whose `REGIONS` URL is `peer_url`: its host
    and port, `wss` (`ws` only for a peer at `http://`), and one token under `/ws/{carrier}/`. A
    signed answer still never sends the carrier anywhere else."""
    own, url = urlsplit(peer_url), urlsplit(stream)
    try:
        same_place = (url.hostname, url.port) == (own.hostname, own.port)
    except ValueError:  # a port that is not a number
        return False
    token = url.path.removeprefix(f"/ws/{carrier}/")
    return same_place and url.scheme == ("ws" if own.scheme == "http" else "wss") and not url.query \
        and not url.fragment and url.username is None and token != url.path and bool(token) and "/" not in token


class CallHandoffs:
    def __init__(self, peers: Peers, client: HttpClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._regions = peers.regions
        self._signer = RegionSigner(self._regions)
        self._client = client or region_client()
        self._clock = clock
        self._resting: dict[str, float] = {}  # peer → when it may be asked again

    def resting(self, peer: str) -> bool:
        """Whether `peer` failed an ask within `REST_SECONDS`: each call would wait on it again."""
        return self._resting.get(peer, 0.0) > self._clock()

    async def ask(self, peer: Peer, carrier: str, reason: str) -> HandedCall | None:
        """`peer`'s stream for a `carrier` call this region hands over for `reason`, or None."""
        handed = await self._ask(peer, carrier, reason)
        if handed is None:
            self._resting[peer.name] = self._clock() + REST_SECONDS
        return handed

    async def _ask(self, peer: Peer, carrier: str, reason: str) -> HandedCall | None:
        body = json.dumps({"carrier": carrier, "reason": reason}).encode()
        headers = {**self._signer.headers(peer.name, "POST", CALLS_PATH, body), "content-type": "application/json"}
        try:
            answer = await self._client.request("POST", peer.url + CALLS_PATH, content=body, headers=headers,
                                                timeout=ANSWER_SECONDS)
            signed = answer.status_code == 200 and answer_is_signed(self._regions.secrets, headers, answer.headers,
                                                                     answer.content)
            data = answer.json() if signed else None
        except (HttpError, ValueError) as exc:
            log.warning("regions: %s did not take a %s call (%s): answered here", peer.name, carrier,
                        type(exc).__name__)
            return None
        if not isinstance(data, dict) or data.get("region") != peer.name:
            log.warning("regions: %s did not take a %s call (answered %s): answered here", peer.name, carrier,
                        answer.status_code)
            return None
        stream, session_id = str(data.get("stream", "")), str(data.get("session_id", ""))
        if not streams_to(peer.url, carrier, stream) or not session_id:
            log.warning("regions: %s answered no stream URL of its own for a %s call: answered here", peer.name,
                        carrier)
            return None
        return HandedCall(peer.name, stream, session_id)

    async def aclose(self) -> None:
        await self._client.aclose()
