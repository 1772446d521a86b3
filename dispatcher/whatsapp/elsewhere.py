"""A WhatsApp call's later event (Meta's `terminate`) that lands in a region which does not hold the call, sent
on to the regions that may.

Meta posts every webhook of an app to one URL, which a front door may send to any region, so a call's
`terminate` can land in another region than its `connect`. The call's session id is derived from its call id
in the region that took the connect, whose tag replaces the id's first digits (dispatcher/sessions/ids.py):
the call id alone does not tell which region that was, so the event goes to every peer. Each copy is one
event, signed as every region request is (dispatcher/regions/signing.py) to the peer's own
`POST /phone/whatsapp`, which takes it once (its store's one-time record) when it holds the call and never
relays it again; it answers signed, and an answer that is not is no peer's. A peer that does not answer,
answers 5xx (its store out, draining) or unsigned, is asked again with backoff, ATTEMPTS times in all; one
that refuses the signature (401: another REGION_SECRET, a clock far off) is not, and is logged as a warning.
docs/phone.md ("Across replicas and regions")."""

from __future__ import annotations

import asyncio
import json
import logging

from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.regions.peers import Peer, Peers, region_client
from dispatcher.regions.signing import RELAYED_BY, SKEW_SECONDS, RegionSigner, answer_is_signed
from dispatcher.whatsapp.events import CallEvent, one_event_webhook

log = logging.getLogger("dispatcher.whatsapp")

WEBHOOK_PATH = "/phone/whatsapp"
ATTEMPTS = 4
FIRST_WAIT_SECONDS = 0.5  # then doubled: 0.5, 1, 2 s between the tries
ANSWER_SECONDS = 5.0  # a peer's answer to one try: it takes the event and answers at once


class RegionsElsewhere:
    def __init__(self, peers: Peers, client: HttpClient | None = None) -> None:
        self._peers = peers
        self._signer = RegionSigner(peers.regions)
        self._client = client or region_client(ANSWER_SECONDS)

    async def send(self, event: CallEvent) -> None:
        """`event` sent to every peer (each tried ATTEMPTS times); failures are logged."""
        body = json.dumps(one_event_webhook(event), separators=(",", ":")).encode()
        await asyncio.gather(*(self._send(peer, event, body) for peer in self._peers.by_name.values()))

    async def _send(self, peer: Peer, event: CallEvent, body: bytes) -> None:
        wait, why = FIRST_WAIT_SECONDS, ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(wait)
                wait *= 2
            status, why = await self._try(peer, body)
            if status == 200:
                return
            if status == 401:  # the peer did not believe this region: asking again is refused alike
                log.warning("whatsapp: call %s: region %s refused its %s as not from a region (%s): REGION_SECRET "
                            "must be the same in every region, and their clocks within %g s", event.call_id,
                            peer.name, event.event, why, SKEW_SECONDS)
                return
            if status is not None and status < 500:  # a peer that takes no WhatsApp calls (404): nothing to retry
                log.info("whatsapp: call %s: region %s did not take its %s (%s)", event.call_id, peer.name,
                         event.event, why)
                return
        log.warning("whatsapp: call %s: its %s not taken by region %s after %d tries (%s): a call held there runs "
                    "on until its session ends", event.call_id, event.event, peer.name, ATTEMPTS, why)

    async def _try(self, peer: Peer, body: bytes) -> tuple[int | None, str]:
        """The peer's status (200 only when signed by a region; None: no answer believed) and what it said."""
        if not peer.reachable:
            return None, peer.problem or "unreachable"
        sent = {"content-type": "application/json", RELAYED_BY: self._peers.regions.here}
        headers = {**sent, **self._signer.headers(peer.name, "POST", WEBHOOK_PATH, body, sent)}
        try:
            answer = await self._client.request("POST", peer.url + WEBHOOK_PATH, content=body, headers=headers,
                                                timeout=ANSWER_SECONDS)
        except HttpError as exc:
            return None, str(exc)
        said = f"{answer.status_code} {answer.content[:300].decode('utf-8', 'replace')}"
        if answer.status_code == 200 and not answer_is_signed(self._peers.regions.secrets, headers, answer.headers,
                                                              answer.content):
            # Whoever answers at a peer's URL without the secret is not that region: asked again.
            return None, f"answered {said} without a region's signature"
        return answer.status_code, said

    async def aclose(self) -> None:
        await self._client.aclose()
