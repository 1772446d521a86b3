"""A spilled SIP call handed to a person: asked of the region its edge reached, which alone can reach that edge.

An inbound call whose start the region its edge reached (A) relayed here (a spill-over, recorded as
`RelayedStarts`) runs here, but its edge is A's: listed in A's SIP_EDGE_URL, keyed by A's SIP_EDGE_SECRET. Its
transfer is sent to A (`POST /regions/sip-transfers`, signed with REGION_SECRET as every region request is),
which checks the asker holds the session and asks the edge it recorded for the call exactly as a call of its
own (dispatcher/api/spilled_transfer.py), with this region's request id: a retry here or there is answered with
the first outcome. A's answer, signed, is read as this region's own edge's would be. A warm transfer is recorded
here before A is asked (`record_warm`), so its steps, relayed from A, are taken here.

Deadlines: this region waits the transfer's own (`BACKOFF`, `WARM_BACKOFF`), A asks its edge within that less
`HOP_SECONDS`. A connection never made, or A's polling found it unreachable, is 503 naming A, nothing
transferred; a try that may have reached A and got no signed answer leaves the outcome unknown (504, never sent
again). A of an older release, without the route (404), is 409 naming the upgrade. docs/regions.md ("Spill-over").
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.outbound.retry import Backoff, retry_after_of
from dispatcher.phone.relayed_starts import RelayedStarts
from dispatcher.phone.sip_edges import json_of, nothing_sent
from dispatcher.phone.sip_transfers import (
    BACKOFF,
    WARM_BACKOFF,
    SipHanded,
    edge_ask,
    handed_of,
    outcome_unknown,
    record_warm,
)
from dispatcher.phone.transfer_target import WARM, TransferTarget
from dispatcher.regions.peers import Peers
from dispatcher.regions.relay import CONNECT_SECONDS
from dispatcher.regions.signing import RegionSigner, answer_is_signed
from dispatcher.store.coordination import FirstClaims

SPILLED_TRANSFER_PATH = "/regions/sip-transfers"
HOP_SECONDS = 2.0  # of this region's wait, kept for the way to the call's region and its answer's way back
ASK_BYTES = 8192  # the ask: a session id, the person, a request id, a briefing of SUMMARY_CHARS at most
ANSWER_BYTES = 16384  # as the edge's own answer is read (sip_transfers.py)


def backoff_of(warm: bool) -> Backoff:
    """This region's wait for a transfer: the one it gives its own edge."""
    return WARM_BACKOFF if warm else BACKOFF


def edge_window(warm: bool) -> float:
    """How long the call's region may take asking its edge: within this region's wait, less the hops (under one
    try's wait, `answer_seconds`, so that it alone ends the region's ask: sip_transfers.py `ask`)."""
    return backoff_of(warm).deadline - HOP_SECONDS


class SpilledTransfers:
    def __init__(self, starts: RelayedStarts, peers: Peers, records: FirstClaims,
                 client: HttpClient | None = None) -> None:
        """`records`: the store's first claims, where a warm transfer is recorded for its steps (`warm_key`)."""
        self._starts = starts
        self._peers = peers
        self._signer = RegionSigner(peers.regions)
        self._records = records
        # A connection not made within CONNECT_SECONDS is tried again (nothing was sent), within the same wait.
        self._client = client or HttpClient(timeout=BACKOFF.deadline, connect_timeout=CONNECT_SECONDS,
                                            follow_redirects=False, max_answer_bytes=ANSWER_BYTES)

    async def relayer(self, session_id: str) -> str | None:
        """The region that relayed `session_id`'s start here (its edge's region); None for a call of this region's
        own. 503 while the store does not answer."""
        return await self._starts.relayer(session_id)

    async def transfer(self, session_id: str, target: TransferTarget, time_limit: int, region: str) -> SipHanded:
        """The outcome at `region`'s edge holding the call; an `ApiError` as sip_transfers.py's."""
        body = edge_ask(target, uuid.uuid4().hex, time_limit)
        if target.mode == WARM:
            await record_warm(self._records, session_id, body["request_id"])
        asked = json.dumps({"session_id": session_id, **body}, separators=(",", ":")).encode()
        return await self._ask(region, asked, target.mode == WARM, target.to)

    async def _ask(self, region: str, asked: bytes, warm: bool, to: str) -> SipHanded:
        backoff = backoff_of(warm)
        loop = asyncio.get_running_loop()
        until = loop.time() + backoff.deadline
        reached = False  # whether a try may have reached the region: then nobody knows whether it was handed
        why = "its polling finds it unreachable"
        for attempt in range(backoff.attempts):
            peer = self._peers.peer(region)
            if peer is None or not peer.reachable:
                why = (peer.problem or why) if peer is not None else "it is not in REGIONS"
                break
            headers = {**self._signer.headers(region, "POST", SPILLED_TRANSFER_PATH, asked),
                       "content-type": "application/json"}
            retry_after = None
            try:
                answer = await self._client.request("POST", peer.url + SPILLED_TRANSFER_PATH, content=asked,
                                                    headers=headers, timeout=max(0.1, until - loop.time()))
            except HttpError as exc:
                reached = reached or not nothing_sent(exc)
                why = str(exc)
            else:
                if answer_is_signed(self._peers.regions.secrets, headers, answer.headers, answer.content):
                    return _handed(answer.status_code, json_of(answer), to, retry_after_of(answer.headers))
                _final_unsigned(region, answer.status_code)
                reached = reached or answer.status_code == 504  # a proxy's: the region may be at it still
                why, retry_after = f"HTTP {answer.status_code}", retry_after_of(answer.headers)
            delay = backoff.delay(attempt, retry_after)
            if attempt + 1 == backoff.attempts or loop.time() + delay >= until:
                break
            await asyncio.sleep(delay)
        if reached:
            raise outcome_unknown(f"region {region}, whose SIP edge holds this call, did not answer the transfer: "
                                  "the call may have been handed over; it is not sent again")
        raise ApiError(503, "region_unreachable", f"region {region}, whose SIP edge holds this call, did not take "
                       f"the transfer ({why}): nothing was transferred, try again in a moment", retry_after=1.0)

    async def aclose(self) -> None:
        await self._client.aclose()


def _final_unsigned(region: str, status: int) -> None:
    """An answer the call's region did not sign, that no retry changes: raised as what it means here."""
    if status == 404:  # a region of a release before this route
        raise ApiError(409, "region_outdated", f"this call came in at region {region}, whose SIP edge holds it, and "
                       f"that region's dispatcher is older than spilled calls' transfers: upgrade region {region} "
                       "to this release; nothing was transferred")
    if status < 400:  # not the region's word, yet something answered: whether the call was handed is not known
        raise outcome_unknown(f"region {region}, whose SIP edge holds this call, answered the transfer unsigned: "
                              "the call may have been handed over; it is not sent again (REGION_SECRET must match)")
    if status not in (502, 503, 504):  # refused before anything was asked (its REGION_SECRET another, say)
        raise ApiError(502, "region_refused", f"region {region}, whose SIP edge holds this call, refused the "
                       f"transfer (HTTP {status}; its log says why: REGION_SECRET must match): nothing was "
                       "transferred")


def _handed(status: int, data: Any, to: str, retry_after: float | None) -> SipHanded:
    """The call's region's signed answer: its edge's outcome, or the `ApiError` it answered, as its own."""
    if (handed := handed_of(status, data, to)) is not None:
        return handed
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or status < 400:
        raise ApiError(502, "region_refused", f"the region holding this call's SIP edge answered HTTP {status} "
                       "without an outcome: nothing is known to be transferred")
    extra = {k: v for k, v in error.items() if k not in ("code", "message")}
    raise ApiError(status, error["code"], str(error.get("message", "")), retry_after=retry_after,
                   extra=extra or None)
