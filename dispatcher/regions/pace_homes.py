"""A carrier account's or a trunk's calls per second, held across every region, not once per region.

Each pace bucket (`twilio:<account>`, `telnyx:<account>`, `trunk:<name>`) has one home: the region
first in rendezvous order of the bucket's name (dispatcher/regions/home.py). The home takes turns
from its own store's bucket at the lower of the asker's rate and its own setting; another region
asks it for each turn, signed (`POST /regions/pace`), within `ASK_SECONDS`, at most `ASKS_PER_HOME`
at once, and never twice for one turn (an ask whose answer never came counts as spent: that call
alone is refused 429). A home whose asks fail `PASS_OVER_FAILURES` times in a row (at once when
the polls find it unreachable too) is passed over for `REST_SECONDS`, and the asking region takes
its turns from its own store at its share (the rate ÷ the regions, bucket `<bucket>@share`). The
sum stays within the pace: the home paces only the share of the regions it hears from and that do
not list it in `PACING_ALONE` (their state), which lists a home while passed over, `LINGER_SECONDS`
after, and while share turns are due; a region first waits `HANDOVER_SECONDS` and its longest wait
from when its listing began (refused 429), for the home to learn it and its full-rate turns to
pass. While the regions' `REGIONS` differ (a change deployed one region at a time), every bucket
is paced alone at the rate ÷ every region named anywhere. docs/phone.md ("Pace"), docs/regions.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.regions.calls import REST_SECONDS
from dispatcher.regions.config import parse_regions
from dispatcher.regions.home import rendezvous_order
from dispatcher.regions.peers import ANSWER_SECONDS, POLL_SECONDS, Peer, Peers, region_client, signed_post
from dispatcher.regions.signing import RegionSigner
from dispatcher.settings import SettingsError
from dispatcher.store.coordination import CreateLimits, CreateTurn

log = logging.getLogger("dispatcher.regions")

PACE_PATH = "/regions/pace"
PACING_ALONE = "pacing_alone"  # in a region's state: the homes it takes its share without, now
PACE_KINDS = "pace_kinds"  # in a region's state: the buckets' kinds it takes asks for as their home
ASK_SECONDS = ANSWER_SECONDS  # a call waits this long at most on a home that hangs
INVITES = "trunk-invites"  # a trunk's INVITEs' bucket (dispatcher/phone/invite_spacing.py)
# A call's INVITE turn is kept past the edge's wait for its bot (`answer_seconds`) and its retries.
RECORD_SECONDS = 900.0
MAX_RECORD_CHARS = 160  # `invite-due:<session id>`
# How long a home takes to learn that a region paces alone: its poll that fails, or that reads the
# region's PACING_ALONE (one poll's interval, a poll in flight and the next).
HANDOVER_SECONDS = POLL_SECONDS + 2 * ANSWER_SECONDS
PASS_OVER_FAILURES = 3  # asks failed in a row before a home its polls still reach is passed over
# A home passed over stays listed this long after, so one that fails now and then is not handed
# over again (and this region's calls refused through a hand-over) each time.
LINGER_SECONDS = 3 * REST_SECONDS
# Asks in flight to one home at once, each with a connection of its own, so an ask's deadline never
# counts a wait for a connection (a burst would make a healthy home look dead).
ASKS_PER_HOME = 32
SLOT_SECONDS = ASK_SECONDS  # a call waits this long for an ask's slot, else it alone is refused
KINDS = ("twilio", "telnyx", "trunk", INVITES)
MAX_NAME_CHARS = 64  # a trunk's name (sipedge/config.py MAX_TRUNK_NAME_CHARS); accounts' ids are shorter
MAX_PER_SECOND = 1000.0  # a trunk's `cps` bound
MIN_PER_SECOND = 1 / 3600  # one call an hour: a turn never blocks the bucket longer
MAX_WAIT_SECONDS = 3600.0
# The home's own rate for a bucket, where it knows one (its own account's setting, its edge's trunk).
OwnRate = Callable[[str], Awaitable[float | None]]


@dataclass(frozen=True)
class PaceTurn:
    """A call's turn: `granted` after `wait` seconds (else refused, `wait` being what it would have
    waited); `by` says who paced it ("" as one region); `refusal` a refusal's own words, if any; `queued`:
    not granted, the key's own turn taken before is due after `wait` (it asks again then)."""

    granted: bool
    wait: float
    by: str = ""
    refusal: str = ""
    queued: bool = False


def pace_home(names: Mapping[str, str], bucket: str) -> str:
    return rendezvous_order(names, "pace", bucket)[0]


async def bucket_turn(limits: CreateLimits, bucket: str, per_second: float, max_wait: float,
                      holder: str | None, ticket: str = "", record: str = "", *, peer: bool = False) -> CreateTurn:
    """A turn of the store's bucket: shared between keys where the call names its key (`holder`), the
    call's `ticket` its place in its key's queue (`CreateLimit.shared`); or the turn recorded for `record`
    (a call's INVITE: `CreateLimit.turn_of`), taken at its first ask: however far off for this region's own
    call (its hand-over's pace bounds its queue), within `max_wait` for a `peer`'s (nothing here bounds it)."""
    limit = limits.create_limit(bucket, per_second, 1)
    if record:
        return await limit.turn_of(record, RECORD_SECONDS, max_wait if peer else math.inf)
    return await (limit.cold(max_wait, ticket) if holder is None else limit.shared(holder, max_wait, ticket))


class OlderHome(Exception):
    """The bucket's home runs a release that takes no INVITE asks: its signed state lists no such kind."""


class RegionPaces:
    """Turns of the deployment's pace buckets: this region's store with one region, else as above."""

    def __init__(self, peers: Peers, limits: CreateLimits, client: HttpClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._peers = peers
        self._regions = peers.regions
        self._limits = limits
        self.store_limits = limits  # this region's own store's buckets
        self._signer = RegionSigner(self._regions)
        self._client = client
        self._clock = clock
        self.own_rate: OwnRate | None = None  # set once the carriers and the edge are built (wiring)
        self._failures: dict[str, int] = {}  # a home → its asks failed in a row
        self._slots: dict[str, asyncio.Semaphore] = {}  # a home → its asks in flight
        self._resting: dict[str, float] = {}  # a home passed over → when it is asked again
        self._listed_since: dict[str, float] = {}  # a home listed in PACING_ALONE → since when
        self._listed_until: dict[str, float] = {}  # … → until when
        self._alone_at: dict[str, frozenset[str]] = {}  # a peer → the homes it said it paces alone from
        self._named_by: dict[str, frozenset[str]] = {}  # a peer → the regions its REGIONS names
        self._kinds_at: dict[str, frozenset[str]] = {}  # a peer → the kinds it said it is home for
        self._warned: set[tuple[str, str]] = set()
        if self._regions.several:
            peers.answer_listeners.append(self._heard)

    async def turn(self, bucket: str, per_second: float, max_wait: float, holder: str | None = None,
                   ticket: str = "", record: str = "") -> PaceTurn:
        """`record`: the turn recorded for it (a call's INVITE), read or taken at the home (`OlderHome` where
        the home's release takes no such ask)."""
        if not self._regions.several:
            turn = await bucket_turn(self._limits, bucket, per_second, max_wait, holder, ticket, record)
            return PaceTurn(turn.granted, turn.wait, queued=turn.queued)
        home = pace_home(self._regions.urls, bucket)
        # Kept apart from other regions' calls by the region's name (a home names the asker so).
        own = f"{self._regions.here}:{record}" if record else ""
        if home == self._regions.here:
            granted, wait, queued = await self.serve(bucket, per_second, max_wait, holder, ticket, own)
            return PaceTurn(granted, wait, f"home {home}", queued=queued)
        peer = self._peers.peer(home)
        now = self._clock()
        if self.differing():  # two regions may each be this bucket's home: no one is asked
            self._list(home, now, now + LINGER_SECONDS)
        elif peer is not None and self._resting.get(home, 0.0) <= now:
            # Asked whatever its polls say (a poll slow under load is no reason to pace alone).
            asked = await self._ask(peer, bucket, per_second, max_wait, holder, ticket, record)
            if asked is not None:
                return asked
        return await self._share(bucket, per_second, max_wait, home, holder, ticket, own)

    async def give_back(self, bucket: str, per_second: float, holder: str | None, ticket: str) -> None:
        """What the cancelled call of `ticket` held in this region's store, given back: its turn of a bucket
        homed here, or of this region's share. A turn another region's home gave runs out there by itself."""
        for name in (bucket, f"{bucket}@share") if self._regions.several else (bucket,):
            await self._limits.create_limit(name, per_second, 1).give_back(ticket, holder)

    async def give_back_record(self, bucket: str, per_second: float, record: str) -> None:
        """The turn recorded for `record` (`turn`'s) given back, where this region's store holds it."""
        if not self._regions.several:
            await self._limits.create_limit(bucket, per_second, 1).give_back_turn(record)
            return
        for name in (bucket, f"{bucket}@share"):
            await self._limits.create_limit(name, per_second, 1).give_back_turn(f"{self._regions.here}:{record}")

    async def serve(self, bucket: str, per_second: float, max_wait: float, holder: str | None = None,
                    ticket: str = "", record: str = "", *, peer: bool = False) -> tuple[bool, float, bool]:
        """As the bucket's home: a turn at the share of the pace of every region that asks here (this
        one, and each peer heard from that does not pace alone from it); `peer`: asked by another region."""
        asking = 1 + sum(1 for peer in self._peers.by_name.values()
                         if peer.reachable and self._regions.here not in self._alone_at.get(peer.name, ()))
        rate = per_second * asking / len(self.named())
        turn = await bucket_turn(self._limits, bucket, rate, max_wait, holder, ticket, record, peer=peer)
        return turn.granted, turn.wait, turn.queued

    def named(self) -> frozenset[str]:
        """Every region named by this region's `REGIONS` or a peer's, as last heard."""
        return frozenset(self._regions.urls).union(*self._named_by.values())

    def differing(self) -> bool:
        """Whether a peer's `REGIONS`, as last heard, names other regions than this one's."""
        return any(names != frozenset(self._regions.urls) for names in self._named_by.values())

    def alone(self) -> list[str]:
        """The homes this replica takes its share without: passed over (and a while after), with share
        turns still due, or every other region while the regions' `REGIONS` differ."""
        now = self._clock()
        listed = {home for home, until in self._listed_until.items() if until > now}
        if self.differing():
            listed |= self.named() - {self._regions.here}
        return sorted(listed)

    def _list(self, home: str, now: float, until: float) -> None:
        """Lists `home` in PACING_ALONE until `until`; its hand-over begins now unless it is listed already."""
        if self._listed_until.get(home, 0.0) <= now:
            self._listed_since[home] = now
        self._listed_until[home] = max(self._listed_until.get(home, 0.0), until)

    async def _ask(self, peer: Peer, bucket: str, per_second: float, max_wait: float,
                   holder: str | None, ticket: str, record: str) -> PaceTurn | None:
        """The home's answer; this call's own refusal when the ask found no slot, was refused or not
        answered; None when the home is passed over now."""
        by = f"home {peer.name}"
        if record and INVITES not in self._kinds_at.get(peer.name, (INVITES,)):
            raise OlderHome(peer.name)  # said in its signed state: never an answer whoever is on the path can give
        slots = self._slots.setdefault(peer.name, asyncio.Semaphore(ASKS_PER_HOME))
        try:
            async with asyncio.timeout(SLOT_SECONDS):
                await slots.acquire()
        except TimeoutError:  # this region's own burst, not the home's fault
            return PaceTurn(False, SLOT_SECONDS, by, f"more than {ASKS_PER_HOME} of this region's calls are asking "
                            f"its home region {peer.name} for a turn at once")
        try:
            answer, why = await self._asked(peer, bucket, per_second, max_wait, holder, ticket, record)
        finally:
            slots.release()
        if answer is not None:
            self._failures.pop(peer.name, None)
            return PaceTurn(answer[0], answer[1], by, queued=answer[2])
        if _refused_the_call(why):  # the home is up: it refused this ask itself
            return PaceTurn(False, ASK_SECONDS, by, f"its home region {peer.name} refused this call's turn ({why})")
        failures = self._failures[peer.name] = self._failures.get(peer.name, 0) + 1
        if failures < PASS_OVER_FAILURES and peer.reachable:
            return PaceTurn(False, ASK_SECONDS, by, f"its home region {peer.name} did not answer this call's ask "
                            f"({why}); the turn it asked for counts as spent")
        now = self._clock()
        self._resting[peer.name] = now + REST_SECONDS
        self._list(peer.name, now, now + REST_SECONDS + LINGER_SECONDS)
        log.warning("regions: %s, home of the pace %s, did not give a turn %d times in a row (%s): this region "
                    "takes its share (%g calls a second) alone for %g s", peer.name, bucket, failures, why,
                    per_second / len(self.named()), REST_SECONDS)  # once per rest, not once per call
        return None

    async def _asked(self, peer: Peer, bucket: str, per_second: float, max_wait: float,
                     holder: str | None, ticket: str, record: str) -> tuple[tuple[bool, float, bool] | None, str]:
        # A slot per ask in flight to each home: one never waits for a connection another home's asks hold.
        self._client = self._client or region_client(ASK_SECONDS, connections=ASKS_PER_HOME * len(self._peers.by_name))
        data, why = await signed_post(self._client, self._signer, self._regions, peer.name, peer.url, PACE_PATH,
                                      {"bucket": bucket, "per_second": per_second, "max_wait": max_wait,
                                       **({"holder": holder} if holder is not None else {}),
                                       **({"ticket": ticket} if ticket else {}),
                                       **({"record": record} if record else {})}, ASK_SECONDS)
        granted = data.get("granted") if isinstance(data, Mapping) else None
        wait = data.get("wait") if isinstance(data, Mapping) else None
        queued = data.get("queued") is True if isinstance(data, Mapping) else False  # an older home: never
        if isinstance(granted, bool) and _number(wait, 0.0, math.inf):
            # The home answered: a turn past the longest wait asked for is not this call's now (it would sleep
            # on it; an INVITE's, recorded there, comes nearer at its next ask), a refusal's wait bounded (its
            # Retry-After).
            soon = granted and float(wait) <= max_wait + 0.01  # type: ignore[arg-type]  # a number, checked
            return (soon, float(wait) if soon else min(float(wait), MAX_WAIT_SECONDS),  # type: ignore[arg-type]
                    queued and not granted), why
        return None, why if data is None else "answered no turn"

    async def _share(self, bucket: str, per_second: float, max_wait: float, home: str,
                     holder: str | None, ticket: str, record: str) -> PaceTurn:
        now = self._clock()
        since = self._listed_since.get(home, now)
        by = f"share of this region while home {home} does not answer"
        embargo = since + HANDOVER_SECONDS + max_wait - now
        if embargo > 0:  # the home's turns at the full rate may still be due, and it has not heard yet
            return PaceTurn(False, embargo, by, f"its home region {home} does not answer: this region takes its "
                            f"share of the pace alone in {embargo:.1f} s")
        share = per_second / len(self.named())
        turn = await bucket_turn(self._limits, f"{bucket}@share", share, max_wait, holder, ticket, record)
        if turn.granted:
            self._list(home, now, now + turn.wait)
        return PaceTurn(turn.granted, turn.wait, by, queued=turn.queued)

    async def _heard(self, peer: Peer, answer: Mapping[str, Any]) -> None:
        homes = answer.get(PACING_ALONE)
        self._alone_at[peer.name] = frozenset(str(h) for h in homes[:64]) if isinstance(homes, list) else frozenset()
        kinds = answer.get(PACE_KINDS)  # none: a release before INVITE asks (which listed no kinds)
        self._kinds_at[peer.name] = frozenset(str(k) for k in kinds[:16]) if isinstance(kinds, list) else frozenset()
        try:
            self._named_by[peer.name] = frozenset(parse_regions(str(answer.get("regions", ""))))
        except SettingsError:  # a conflict the polls report; nothing to count here
            pass

    async def offered(self, sender: str, payload: object) -> dict[str, Any]:
        """As the home: the asking region's turn (`POST /regions/pace`), `{"granted", "wait"}`, at the
        lower of its rate and this region's own, where this region has one."""
        bucket, rate, wait, holder, ticket, record = self.parse_ask(payload)
        own = await self.own_rate(bucket) if self.own_rate is not None else None
        if own is not None and not math.isclose(own, rate) and (sender, bucket) not in self._warned:
            self._warned.add((sender, bucket))
            log.warning("regions: %s paces %s at %g calls a second, this region at %g: the lower holds. A pace is "
                        "the whole deployment's, every region's setting the same (docs/sip.md, upgrading to "
                        "several regions)", sender, bucket, rate, own)
        granted, wait, queued = await self.serve(bucket, rate if own is None else min(rate, own), wait, holder,
                                                 ticket, f"{sender}:{record}" if record else "", peer=True)
        # A refusal's wait within what the asker reads (a bucket pushed past it is still a refusal, not no answer).
        wait = wait if granted else min(wait, MAX_WAIT_SECONDS)
        return {"granted": granted, "wait": round(wait, 3), **({"queued": True} if queued else {})}

    def parse_ask(self, data: object) -> tuple[str, float, float, str | None, str, str]:
        """A home's request body: (bucket, calls a second, longest wait, the asking key if named, the call's
        ticket in its key's queue or "", the INVITE turn's record or ""), or 400; 409
        where this region is not the bucket's home (REGIONS differ: the asker paces its share alone rather than
        make two homes)."""
        bucket = data.get("bucket") if isinstance(data, Mapping) else None
        rate = data.get("per_second") if isinstance(data, Mapping) else None
        wait = data.get("max_wait") if isinstance(data, Mapping) else None
        holder = data.get("holder") if isinstance(data, Mapping) else None
        ticket = data.get("ticket", "") if isinstance(data, Mapping) else ""
        record = data.get("record", "") if isinstance(data, Mapping) else ""
        kind, _, name = bucket.partition(":") if isinstance(bucket, str) else ("", "", "")
        if (kind not in KINDS or not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable()
                or not _number(rate, MIN_PER_SECOND, MAX_PER_SECOND) or not _number(wait, 0.0, MAX_WAIT_SECONDS)
                or not (holder is None or (isinstance(holder, str) and 0 < len(holder) <= MAX_NAME_CHARS
                                           and holder.isprintable()))
                or not (isinstance(ticket, str) and len(ticket) <= MAX_NAME_CHARS and ticket.isprintable())
                or not (isinstance(record, str) and len(record) <= MAX_RECORD_CHARS and record.isprintable())
                or (kind == INVITES) != bool(record)):
            raise ApiError(400, "invalid_request", "expected {\"bucket\": "
                           "\"twilio|telnyx|trunk|trunk-invites:<name of at most "
                           f"{MAX_NAME_CHARS} characters>\", \"per_second\": [1/3600, {MAX_PER_SECOND:g}], "
                           f"\"max_wait\": [0, {MAX_WAIT_SECONDS:g}], \"holder\": an API key's id (optional), "
                           "\"ticket\": the call's place in its key's queue (optional), \"record\": a trunk-invites "
                           "turn's call (with that bucket alone)}")
        if pace_home(self._regions.urls, str(bucket)) != self._regions.here:
            raise ApiError(409, "not_pace_home", "this region is not the pace's home by its REGIONS: make every "
                           "region's REGIONS the same")
        return str(bucket), float(rate), float(wait), holder, ticket, record  # type: ignore[arg-type]  # checked

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _refused_the_call(why: str) -> bool:
    """Whether the home answered this ask `4xx` (as `signed_post` says it): refused for what it asked,
    so up; bar 401 (no region's signature: not believed) and 409 (its `REGIONS` differ from this one's)."""
    status = why.removeprefix("answered ")
    return status.isdigit() and 400 <= int(status) < 500 and status not in ("401", "409")


def _number(value: object, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and low <= value <= high
