"""A WhatsApp call's later event (Meta's `terminate`) that lands in a region which does not hold the call, sent
on to the regions that may.

Meta posts every webhook of an app to one URL, which a front door may send to any region, so a call's
`terminate` can land in another region than its `connect`. The call's session id is derived from its call id
in the region that took the connect, whose tag replaces the id's first digits (dispatcher/sessions/ids.py):
the call id alone does not tell which region that was, so the event goes to every peer. Each copy is one
event, relayed signed through the region relay (dispatcher/regions/relay.py) to the peer's own
`POST /phone/whatsapp`, which takes it once (its store's one-time record) when it holds the call and never
relays it again. A peer that does not answer, or answers 5xx (its store out, draining), is asked again with
backoff, ATTEMPTS times in all. docs/phone.md ("Across replicas and regions")."""

from __future__ import annotations

import asyncio
import json
import logging

from dispatcher.regions.peers import Peer, Peers
from dispatcher.regions.relay import RegionRelay, RegionUnreachable
from dispatcher.whatsapp.events import CallEvent, one_event_webhook

log = logging.getLogger("dispatcher.whatsapp")

WEBHOOK_PATH = "/phone/whatsapp"
ATTEMPTS = 4
FIRST_WAIT_SECONDS = 0.5  # then doubled: 0.5, 1, 2 s between the tries
ANSWER_SECONDS = 5.0  # a peer's answer to one try: it takes the event and answers at once


class RegionsElsewhere:
    def __init__(self, peers: Peers, relay: RegionRelay) -> None:
        self._peers, self._relay = peers, relay

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
            if status is not None and status < 500:
                if status != 200:  # a peer that takes no WhatsApp calls (404): nothing to retry
                    log.info("whatsapp: call %s: region %s did not take its %s (%s)", event.call_id, peer.name,
                             event.event, why)
                return
        log.warning("whatsapp: call %s: its %s not taken by region %s after %d tries (%s): a call held there runs "
                    "on until its session ends", event.call_id, event.event, peer.name, ATTEMPTS, why)

    async def _try(self, peer: Peer, body: bytes) -> tuple[int | None, str]:
        """The peer's status (None: no answer) and what it said."""
        if not peer.reachable:
            return None, peer.problem or "unreachable"
        try:
            answer = await self._relay.forward(
                peer.name, peer.url, "POST", WEBHOOK_PATH, {"content-type": "application/json"}, body,
                still_reachable=lambda: peer.reachable, deadline_seconds=ANSWER_SECONDS)
        except RegionUnreachable as exc:
            return None, str(exc)
        said = b""
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                async for chunk in answer.body:
                    said += chunk[:300 - len(said)]
        except TimeoutError:
            pass  # its status is its answer
        finally:
            answer.close()
        return answer.status, f"{answer.status} {said.decode('utf-8', 'replace')}"
