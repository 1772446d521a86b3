"""A spilled SIP call handed to a person: asked of the region its edge reached, which alone can reach that edge.

An inbound call whose start the region its edge reached (A) relayed here (a spill-over, recorded as
`RelayedStarts`) runs here, but its edge is A's: listed in A's SIP_EDGE_URL, keyed by A's SIP_EDGE_SECRET. Its
transfer is sent to A (`POST /regions/sip-transfers`, signed with REGION_SECRET as every region request is),
which checks the asker holds the session and asks the edge it recorded for the call exactly as a call of its
own (dispatcher/api/spilled_transfer.py), with this region's request id: a retry here or there is answered with
the first outcome. A warm transfer is recorded here before A is asked (`record_warm`), so its steps, relayed
from A, are taken here. Each ask says what is left of this region's wait (dispatcher/phone/spilled_window.py).

Only A's word counts, signed with its status (dispatcher/regions/answer_status.py): the edge's outcome, its
refusal as this region's own edge's would read, or A's refusal by name (spilled_refusals.py). A connection
never made, or A's polling found it unreachable: 503 naming A, nothing transferred. Anything else after a
connection was made (no answer, or one A did not sign) is tried again with the same request id and, past the
wait, leaves the outcome unknown (504, never sent again). A whose polled state does not say it answers this
way (SPILLED_TRANSFERS: a release before) is not asked: 409 naming the upgrade; nor is one whose replica of
the release before refused an ask unread (a deploy under way there, `older_refusal`), unless a later try is
taken. docs/regions.md ("Spill-over").
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.outbound.http_failure import never_connected
from dispatcher.outbound.retry import retry_after_of
from dispatcher.phone.relayed_starts import RelayedStarts
from dispatcher.phone.sip_edges import json_of
from dispatcher.phone.sip_transfers import BACKOFF, SipHanded, edge_ask, handed_of, outcome_unknown, record_warm
from dispatcher.phone.spilled_refusals import EDGE_ASKED, INVALID_ASK, passed_on, refused_unasked
from dispatcher.phone.spilled_window import backoff_of, may_ask
from dispatcher.phone.transfer_target import WARM, TransferTarget
from dispatcher.regions.answer_status import status_is_signed
from dispatcher.regions.peers import Peers
from dispatcher.regions.relay import CONNECT_SECONDS
from dispatcher.regions.signing import RegionSigner, answer_is_signed
from dispatcher.store.coordination import FirstClaims

SPILLED_TRANSFER_PATH = "/regions/sip-transfers"
# In a region's polled state: the version of this route it answers (2: asks bounded by `seconds_left`, answers
# signed with their status). A region of the release before says nothing, and is not asked.
SPILLED_TRANSFERS = "spilled_transfers"
SPILLED_TRANSFERS_VERSION = 2
ASK_BYTES = 8192  # the ask: a session id, the person, a request id, a briefing of SUMMARY_CHARS at most
ANSWER_BYTES = 16384  # as the edge's own answer is read (sip_transfers.py)


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
        self._check_release(region)
        body = {"session_id": session_id, **edge_ask(target, uuid.uuid4().hex, time_limit)}
        if target.mode == WARM:
            await record_warm(self._records, session_id, body["request_id"])
        return await self._ask(region, body, target.mode == WARM, target.to)

    def _check_release(self, region: str) -> None:
        """409 when `region`, polled and answering, does not answer this route as this release asks it."""
        peer = self._peers.peer(region)
        version = None if peer is None else peer.state.get(SPILLED_TRANSFERS)
        if peer is None or not peer.reachable or (isinstance(version, int) and version >= SPILLED_TRANSFERS_VERSION):
            return  # an unreachable one is refused by `_ask`, naming why
        raise outdated(region)

    async def _ask(self, region: str, body: dict[str, Any], warm: bool, to: str) -> SipHanded:
        backoff = backoff_of(warm)
        loop = asyncio.get_running_loop()
        until = loop.time() + backoff.deadline
        reached = False  # whether a try may have reached the region: then nobody knows whether it was handed
        older = False  # a replica there of the release before refused an ask unread (a deploy under way there)
        why = "its polling finds it unreachable"
        for attempt in range(backoff.attempts):
            peer = self._peers.peer(region)
            if peer is None or not peer.reachable:
                why = (peer.problem or why) if peer is not None else "it is not in REGIONS"
                break
            seconds_left = until - loop.time()
            if not may_ask(seconds_left):  # the region would refuse it: too little left to ask its edge
                why = "too little of the wait was left for another try"
                break
            asked = json.dumps({**body, "seconds_left": round(seconds_left, 3)}, separators=(",", ":")).encode()
            headers = {**self._signer.headers(region, "POST", SPILLED_TRANSFER_PATH, asked),
                       "content-type": "application/json"}
            retry_after = None
            try:
                answer = await self._client.request("POST", peer.url + SPILLED_TRANSFER_PATH, content=asked,
                                                    headers=headers, timeout=seconds_left)
            except HttpError as exc:
                reached = reached or not never_connected(exc)
                why = str(exc)
            else:
                if status_is_signed(self._peers.regions.secrets, headers, answer.status_code, answer.headers,
                                    answer.content):
                    return read_answer(region, answer.status_code, json_of(answer), to, retry_after_of(answer.headers),
                                   reached)
                if older_refusal(self._peers.regions.secrets, headers, answer):
                    older, why = True, "a replica of the release before refused the ask unread"
                else:
                    # Something answered at its URL without its word (a proxy, a region on another secret, a party
                    # between the regions): the region may have the ask, and a retry with the same request id is safe.
                    reached = True
                    why = f"HTTP {answer.status_code} without its signature"
                    retry_after = retry_after_of(answer.headers)
            delay = backoff.delay(attempt, retry_after)
            if attempt + 1 == backoff.attempts or loop.time() + delay >= until:
                break
            await asyncio.sleep(delay)
        if reached:
            raise outcome_unknown(f"region {region}, whose SIP edge holds this call, gave no signed answer to the "
                                  f"transfer (the last try: {why}): the call may have been handed over; it is not "
                                  "sent again (REGION_SECRET must match)")
        if older:
            raise outdated(region)
        raise ApiError(503, "region_unreachable", f"region {region}, whose SIP edge holds this call, did not take "
                       f"the transfer ({why}): nothing was transferred, try again in a moment", retry_after=1.0)

    async def aclose(self) -> None:
        await self._client.aclose()


def outdated(region: str) -> ApiError:
    return ApiError(409, "region_outdated", f"this call came in at region {region}, whose SIP edge holds it, and "
                    "that region's dispatcher is older than spilled calls' transfers of this release: upgrade "
                    f"region {region} to this release; nothing was transferred")


def older_refusal(secrets_: Sequence[bytes], request_headers: Mapping[str, str], answer: HttpResponse) -> bool:
    """Whether `answer` is a replica of the release before refusing the ask unread: its body signed, with no
    status signature, and the refusal it made of the field it does not know (`seconds_left`: 422
    `invalid_request`) with no `edge_asked`. This release says `edge_asked: false` in each refusal it makes before
    asking its edge (an `invalid_request` among them), and after, answers with the edge's outcome or refusal,
    never `invalid_request`. Its status counts for nothing here, and its body is signed: a success or this
    release's refusal cannot be passed off as it."""
    if not answer_is_signed(secrets_, request_headers, answer.headers, answer.content):
        return False
    data = json_of(answer)
    error = data.get("error") if isinstance(data, dict) else None
    return isinstance(error, dict) and error.get("code") == INVALID_ASK and EDGE_ASKED not in error


def read_answer(region: str, status: int, data: Any, to: str, retry_after: float | None, reached: bool) -> SipHanded:
    """The call's region's signed answer: its edge's outcome, its edge's refusal as this region's own, or its own
    refusal passed on. `reached`: an earlier try may have reached it, whose outcome a refusal now does not tell."""
    if (handed := handed_of(status, data, to)) is not None:
        return handed
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or status < 400:
        raise outcome_unknown(f"region {region}, whose SIP edge holds this call, answered the transfer HTTP {status} "
                              "with neither an outcome nor a refusal: the call may have been handed over; it is not "
                              "sent again")
    if refused_unasked(error):
        if reached:
            raise outcome_unknown(f"region {region}, whose SIP edge holds this call, refused a retry of the transfer "
                                  f"({error['code']}) after an earlier try that may have reached it: the call may "
                                  "have been handed over; it is not sent again")
        raise passed_on(region, status, error, retry_after)
    extra = {k: v for k, v in error.items() if k not in ("code", "message")}
    raise ApiError(status, error["code"], str(error.get("message", "")), retry_after=retry_after,
                   extra=extra or None)
