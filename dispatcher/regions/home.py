"""An `Idempotency-Key`'s home region, and the one region that holds its session.

A key's home is chosen by rendezvous hashing of (the API key's id, the `Idempotency-Key`) over the
configured regions: every region computes the same home without asking anyone, and adding or
removing a region moves only the keys whose home it was. The region a start arrives at asks the
home (or, being home, its own store) to record it as the key's holder; the first region recorded
stays the holder for `HOLD_SECONDS`, so a replay anywhere reaches the session the first start
made, also when two regions get the key at the same instant. A home that does not answer refuses
the start (503) rather than risk a second session.

A `POST /start` is recorded for `PROVISIONAL_SECONDS` first, and kept for `HOLD_SECONDS` once it
answered with its session (`keep`): a start refused after its record (at a cap, past the caller's
patience) leaves a record of minutes, not of a day. A home of the release before ignores both
words and records every key for the day, as it did. docs/regions.md ("One Idempotency-Key, everywhere").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers, region_client, signed_post
from dispatcher.regions.signing import RegionSigner
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.memory import ClaimsFull

log = logging.getLogger("dispatcher.regions")

KEYS_PATH = "/regions/keys"
HOLD_SECONDS = 24 * 3600  # as long as a client may retry a start with the same key
# Longer than a start and its `?wait=started` (SESSION_WAIT_SECONDS, 300 s by default) take: a start
# that made its session is kept before its record can run out.
PROVISIONAL_SECONDS = 15 * 60
KEY_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def home_region(regions: Regions, caller_id: str, idempotency_key: str) -> str:
    return homes_in_order(regions, caller_id, idempotency_key)[0]


def homes_in_order(regions: Regions, caller_id: str, idempotency_key: str) -> list[str]:
    """Every region, the key's home first, then who stands in for it (rendezvous order)."""
    return rendezvous_order(regions.urls, caller_id, idempotency_key)


def rendezvous_order(names: Iterable[str], *key: str) -> list[str]:
    """`names` (regions), the one whose turn `key` is first: the highest `sha256(name, *key)` (NUL
    between the parts). Every region computes the same order without asking; adding or removing a
    region moves only what was its turn. An Idempotency-Key's home, a webhook signature's, a pace's."""
    def weight(name: str) -> bytes:
        return hashlib.sha256("\0".join((name, *key)).encode()).digest()

    return sorted(names, key=weight, reverse=True)


def key_digest(caller_id: str, idempotency_key: str) -> str:
    """What a home region records: never the key itself."""
    return hashlib.sha256("\0".join((caller_id, idempotency_key)).encode()).hexdigest()


class KeyHomes:
    def __init__(self, peers: Peers, holders: FirstClaims, client: HttpClient | None = None) -> None:
        self._peers = peers
        self._regions = peers.regions
        self._holders = holders
        self._signer = RegionSigner(self._regions)
        self._client = client or region_client()
        self._keeping: set[asyncio.Task[None]] = set()

    async def holder(self, caller_id: str, idempotency_key: str, proposed: str | None = None, *,
                     standby: bool = False, provisional: bool = False) -> str:
        """The region that holds this key's session: `proposed` (default this one) when it is the
        first to be recorded, else the one that was. `standby`: while the home does not answer, the
        next region in the same hash order that does stands in for it (a call must be answered;
        regions that agree on which peers answer agree on the stand-in). `provisional`: recorded for
        `PROVISIONAL_SECONDS` until `keep` (never with `standby`)."""
        digest = key_digest(caller_id, idempotency_key)
        proposed = proposed or self._regions.here
        order = homes_in_order(self._regions, caller_id, idempotency_key)
        if not standby:
            return await self._ask(order[0], digest, proposed, "provisional" if provisional else "record")
        # A home that answers its polls but not for the key (its store down, a hang) is passed over
        # too: the next that answers decides, else the caller hears a 503 in every region.
        refused: ApiError | None = None
        for home in order:
            peer = self._peers.peer(home)
            if home != self._regions.here and peer is not None and not peer.reachable:
                if peer.problem is None:  # not heard from yet (this replica just started): it may well
                    raise home_unreachable(home, "not heard from yet")  # answer, so none stands in for it
                continue
            try:
                return await self._ask(home, digest, proposed, "record")
            except ApiError as exc:
                refused = refused or exc
        raise refused or home_unreachable(order[0], None)

    def keep(self, caller_id: str, idempotency_key: str, region: str) -> None:
        """The start `region` was recorded for (provisionally) made its session: its record is kept
        for `HOLD_SECONDS`, asked in the background (the start's answer waits for no other region:
        the record has minutes left). A home that does not answer leaves it provisional (logged)."""
        task = asyncio.ensure_future(self._keep(caller_id, idempotency_key, region))
        self._keeping.add(task)
        task.add_done_callback(self._keeping.discard)

    async def _keep(self, caller_id: str, idempotency_key: str, region: str) -> None:
        home = homes_in_order(self._regions, caller_id, idempotency_key)[0]
        try:
            await self._ask(home, key_digest(caller_id, idempotency_key), region, "keep")
        except ApiError as exc:
            log.warning("an Idempotency-Key's record at its home %s stays provisional (%s s): %s", home,
                        PROVISIONAL_SECONDS, exc.message)

    async def _ask(self, home: str, digest: str, proposed: str, how: str) -> str:
        if home == self._regions.here:
            return await self.record(digest, proposed, how)
        peer = self._peers.peer(home)
        if peer is None or not peer.reachable:
            raise home_unreachable(home, peer.problem if peer is not None else None)
        word = {} if how == "record" else {how: True}  # a home of the release before reads neither
        data, why = await signed_post(self._client, self._signer, self._regions, home, peer.url, KEYS_PATH,
                                      {"key": digest, "region": proposed, **word})
        holder = data.get("holder") if isinstance(data, Mapping) else None
        if holder not in self._regions.urls:
            raise home_unreachable(home, why)
        return str(holder)

    async def record(self, digest: str, region: str, how: str = "record") -> str:
        """As the key's home: the region recorded first for `digest` (`region` if none was); `how`:
        "record" (for `HOLD_SECONDS`), "provisional" or "keep" (what `holder` and `keep` ask)."""
        try:
            if how == "keep":
                await self._holders.keep(digest, region, HOLD_SECONDS)
                return region
            return await self._holders.first(digest, region,
                                             PROVISIONAL_SECONDS if how == "provisional" else HOLD_SECONDS)
        except ClaimsFull:
            raise ApiError(503, "region_unreachable", "this region holds as many Idempotency-Keys' records as it "
                           "may (it runs without a store): retry later, or give the regions a store",
                           retry_after=60) from None
        except StoreUnavailable:
            raise ApiError(503, "region_unreachable", "this region's store does not answer, so the "
                           "Idempotency-Key's holder cannot be known: retry in a moment", retry_after=1) from None

    def parse_record(self, data: object) -> tuple[str, str, str]:
        """A home's request body: (the key's digest, the asking region, how to record it), or 400."""
        if not isinstance(data, Mapping) or not KEY_DIGEST.fullmatch(str(data.get("key", ""))) \
                or data.get("region") not in self._regions.urls:
            raise ApiError(400, "invalid_request", "expected {\"key\": <64 hex>, \"region\": <a region's name>}")
        how = "keep" if data.get("keep") is True else "provisional" if data.get("provisional") is True else "record"
        return str(data["key"]), str(data["region"]), how

    async def aclose(self) -> None:
        if self._keeping:  # each within the region client's own deadline
            await asyncio.gather(*self._keeping, return_exceptions=True)
        await self._client.aclose()


def home_unreachable(home: str, why: str | None) -> ApiError:
    return ApiError(503, "region_unreachable", f"this Idempotency-Key's home region {home} does not answer"
                    + (f" ({why})" if why else "") + "; the start is refused rather than risk a second "
                    "session: retry in a moment", retry_after=1)
