"""A verified Daily `dialout.*` webhook that landed in a region whose store did not place its leg, sent on to the
region that did (daily_leg_owner.py), which handles it as if Daily had posted it there; so is a `calltransfer.*`
one of a session another region holds (its id's region tag: daily_calltransfer.py).

The body and Daily's signature headers go as they came to the owner's `POST /phone/daily/webhook`, signed as every
region request is (dispatcher/regions/signing.py: the receiver named, within 30 s of its clock, each signature
taken once, so a forged or replayed relay is refused 401) and marked relayed (`Voicefleet-Relayed-By`: the owner
never sends it on again). The owner checks Daily's signature too, so a region's secret alone forges no answer.
Its `200` counts only when signed by a region: whoever answers at its URL without the secret is not that region.

A try with no answer within TRY_SECONDS, a 5xx or an unsigned 200 is tried again, ATTEMPTS in all, with backoff and
a fresh signature each; then Daily is answered 503, so that its own retry (`retryType: exponential`) delivers the
event again. Both: the person's answer counts only within the ring's 12 s, so a blink between regions is bridged
here at once, and Daily's retry (its schedule is not documented) covers a longer outage. A refusal (another 4xx:
another REGION_SECRET, a clock far off, another DAILY_WEBHOOK_SECRET, or `misrouted`: the owner's REGIONS names
another region for the leg) is not asked again: 502, naming the fix. What went wrong is logged, never told Daily.
At most MAX_IN_FLIGHT events are on their way to one region at once; past that Daily is answered 503 at once.

A warm transfer is offered only once every peer has said, in its polled state, that it relays such events
(DAILY_RELAY) and that its REGIONS lists this region (`unready`): a region still on a release without the relay, or
one not told of a new region yet, would answer the leg's events "ignored", and the person's answer would be lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.phone.daily_leg_owner import placed_by
from dispatcher.phone.daily_legs import DialoutEvent
from dispatcher.regions.config import parse_regions
from dispatcher.regions.peers import Peer, Peers, region_client
from dispatcher.regions.signing import RELAYED_BY, RegionSigner, answer_is_signed
from dispatcher.settings import SettingsError

log = logging.getLogger("dispatcher.phone")

WEBHOOK_PATH = "/phone/daily/webhook"
DAILY_HEADERS = ("content-type", "x-webhook-timestamp", "x-webhook-signature")  # what the owner checks
ATTEMPTS = 3
TRY_SECONDS = 2.0  # one try: the owner keeps the event in its store and answers at once
FIRST_WAIT_SECONDS = 0.25  # then doubled: every try within about 7 s, well inside a webhook's patience
MAX_IN_FLIGHT = 32  # events on their way to one region at once (each holds Daily's request up to ~7 s)
DAILY_RELAY = "daily_relay"  # in a region's polled state: it relays dial-out events of other regions' legs
MISROUTED = "misrouted"  # the owner's answer to a relayed event whose leg its REGIONS gives to another region


class DailyHookRelay:
    def __init__(self, peers: Peers, client: HttpClient | None = None) -> None:
        self._peers = peers
        self._regions = peers.regions
        self._signer = RegionSigner(peers.regions)
        self._client = client or region_client(TRY_SECONDS)
        self._in_flight: dict[str, asyncio.Semaphore] = {}
        self._relaying: dict[str, bool] = {}  # each peer's last polled answer: relays, and lists this region
        peers.answer_listeners.append(self._heard)

    async def _heard(self, peer: Peer, answer: Mapping[str, Any]) -> None:
        try:
            lists_here = self._regions.here in parse_regions(str(answer.get("regions", "")))
        except SettingsError:  # a REGIONS the polls report as a conflict: not ready
            lists_here = False
        self._relaying[peer.name] = answer.get(DAILY_RELAY) is True and lists_here

    def unready(self) -> str | None:
        """Why a warm transfer's leg events might be lost now (a peer that does not relay them here), or None."""
        missing = sorted(name for name in self._regions.peers if not self._relaying.get(name))
        if not missing:
            return None
        return (f"region {', '.join(missing)} has not said it relays Daily's dial-out events to this region (a "
                "release before the relay, a REGIONS that does not list this region yet, or not heard from since "
                "this region started)")

    def owner(self, event: DialoutEvent) -> str | None:
        """The other region that placed `event`'s leg; None: this region's, or no region's (handled here)."""
        region = placed_by(event.user, self._regions)
        return region if region is not None and region != self._regions.here else None

    def session_owner(self, session_id: str) -> str | None:
        """The other region holding `session_id` (a calltransfer event's session); None: this region's, or none."""
        return self._regions.holding(session_id)

    async def send(self, region: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The owner's signed answer to the event Daily posted here (`body`, `headers`); `ApiError` 503 when it
        did not take it (Daily sends it again), 502 when it refused it."""
        given = headers if isinstance(headers, Headers) else Headers(headers=dict(headers))
        # The first of each, as Daily's signature check reads it (a repeated header cannot pick another).
        daily = {name: value for name in DAILY_HEADERS if (value := given.get(name)) is not None}
        gate = self._in_flight.setdefault(region, asyncio.Semaphore(MAX_IN_FLIGHT))
        if gate.locked():
            log.warning("daily: %d events already on their way to region %s: Daily sends this one again",
                        MAX_IN_FLIGHT, region)
            raise ApiError(503, "region_busy", "this event was not taken: send it again", retry_after=1.0)
        async with gate:
            return await self._relayed(region, body, daily)

    async def _relayed(self, region: str, body: bytes, daily: Mapping[str, str]) -> dict[str, Any]:
        wait, why = FIRST_WAIT_SECONDS, ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(wait)
                wait *= 2
            status, answer, why = await self._try(region, body, daily)
            if status == 200 and isinstance(answer, dict):
                return answer
            if status is not None and 400 <= status < 500:
                fix = ("REGIONS must be the same in every region" if MISROUTED in why else "REGION_SECRET and "
                       "DAILY_WEBHOOK_SECRET must be the same in every region, and the regions' clocks within 30 s")
                log.warning("daily: region %s refused an event relayed to it (%s): %s", region, why, fix)
                raise ApiError(502, "region_refused", f"this event was refused where it belongs: {fix}") from None
        log.warning("daily: an event for region %s was not taken after %d tries (%s): Daily sends it again",
                    region, ATTEMPTS, why)
        raise ApiError(503, "region_unreachable", "this event was not taken: nothing was kept, send it again",
                       retry_after=1.0)

    async def _try(self, region: str, body: bytes, daily: Mapping[str, str]) -> tuple[int | None, Any, str]:
        """The owner's status (200 only when signed; None: no answer believed), its JSON, and a few words."""
        peer = self._peers.peer(region)
        if peer is None:
            return None, None, "not a peer"
        if not peer.reachable and peer.problem is not None:  # polled and found down: no try would be answered
            return None, None, peer.problem
        sent = {**daily, RELAYED_BY: self._regions.here}
        signed = {**sent, **self._signer.headers(region, "POST", WEBHOOK_PATH, body, sent)}
        try:
            answer = await self._client.request("POST", peer.url + WEBHOOK_PATH, content=body, headers=signed,
                                                timeout=TRY_SECONDS)
        except HttpError as exc:
            return None, None, str(exc)
        said = f"answered {answer.status_code} {answer.content[:200].decode('utf-8', 'replace')}"
        if answer.status_code != 200:
            return answer.status_code, None, said
        if not answer_is_signed(self._regions.secrets, signed, answer.headers, answer.content):
            return None, None, f"{said} without a region's signature"
        try:
            return 200, answer.json(), said
        except ValueError:
            return None, None, f"{said}: no JSON"

    async def aclose(self) -> None:
        await self._client.aclose()
