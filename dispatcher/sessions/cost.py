"""What a session's machine cost: its machine-seconds at the price of one running bot of the
deployment's provider and size (dispatcher/reserve/prices.py, the table the reserve's hot tier is
priced by), plus, for a bot claimed from the warm reserve, its idle share, plus its bot's services (LLM, TTS,
STT) as its `ended` report's `usage` says, at the services' price table (dispatcher/usage/), plus the
TURN relay's share of a relayed WebRTC call, as its `ended` report's `transport` says, at the relay's
cloud's egress price (dispatcher/usage/relay_cost.py), plus, for a SIP call through a priced trunk, its
answered minutes at the trunk's price (dispatcher/usage/telephony_cost.py).

From the session's timeline (dispatcher/sessions/timeline.py): its machine is paid from its
`launched` or `claimed` event until its bot's `ended` report (a live session: until now; one that
ended without a report: until its machine's end as the dispatcher recorded it once, `machine_ended`,
else its last event, and the cost says it is estimated). So a killed bot's call has one cost, the
same in every view that reads it after its end, however long after (a stop, its report's writing). The idle share is
the claimed bot's own idle time before its claim, since its idle hello, which the reserve measured
and the `claimed` event carries (`idle_seconds`). docs/operations.md ("What a call cost") has the
formula, the choice of the idle share and its alternative, and what is not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botchannel.transport_use import parse_transport
from botchannel.usage import UsageError
from dispatcher.reserve.prices import BotPrice
from dispatcher.store.transport_so_far import TransportKeeping
from dispatcher.store.unavailable import StoreUnavailable
from dispatcher.store.usage_so_far import SoFarKeeping
from dispatcher.usage.price_table import PriceTable
from dispatcher.usage.relay_cost import RelayCost, price_relay
from dispatcher.usage.relay_price import RelayPrice
from dispatcher.usage.service_cost import ServicesCost, price_usage
from dispatcher.usage.telephony_cost import TelephonyCost, price_telephony

CURRENCY = "USD"
STARTS = ("claimed", "launched")  # the timeline's events that say the session's machine is paid from then
# What a session's cost leaves out, always (docs/operations.md says where to add each).
NOT_COUNTED = (
    "Daily room minutes",
    "network egress besides the TURN relay (the bot's own calls to its services, signalling)",
    "a provider's minimum billed time, and the machine's stop after the bot's end",
)
THAWED = "a thawed bot's time before it froze, and its frozen storage"
UNPRICED = "the machine: no price for this provider and size (RESERVE_HOT_DOLLARS_PER_MONTH sets one)"
UNREPORTED = "the bot's LLM, STT and TTS use: its bot ended without reporting it"
NOT_YET = "the bot's LLM, STT and TTS use: its bot reports it at its end"
# A bot that died without its end: its use as it last reported it during the call (dispatcher/usage/so_far.py)
PARTIAL = "the bot's LLM, STT and TTS use after its last report during the call: it ended without reporting its end"
RELAY_NOT_YET = "TURN relay: a WebRTC bot reports its transport during the call and at its end"
PARTIAL_RELAY = "TURN relay: the bytes after its bot's last report during the call (it ended without reporting its end)"


@dataclass(frozen=True)
class SessionCost:
    provider: str
    price: BotPrice | None  # None: the provider or size is not in the table
    session_seconds: float  # from its machine's launch or claim to its end (or now)
    idle_seconds: float  # a claimed bot's idle time before its claim; 0 for a cold launch
    estimated: bool  # its end is not its bot's report (a live session, or one that ended unreported)
    not_counted: tuple[str, ...]
    services: ServicesCost | None = None  # its bot's services at the price table (dispatcher/usage/)
    relay: RelayCost | None = None  # the TURN relay's share (dispatcher/usage/relay_cost.py)
    telephony: TelephonyCost | None = None  # a SIP call's minutes at its trunk's price (usage/telephony_cost.py)

    @property
    def machine_seconds(self) -> float:
        return self.session_seconds + self.idle_seconds

    @property
    def session_usd(self) -> float | None:
        return None if self.price is None else self.session_seconds * self.price.dollars_per_second

    @property
    def idle_usd(self) -> float | None:
        return None if self.price is None else self.idle_seconds * self.price.dollars_per_second

    @property
    def machine_usd(self) -> float | None:
        return None if self.price is None else self.machine_seconds * self.price.dollars_per_second

    @property
    def relay_usd(self) -> float | None:
        """The relay's share; None when not measured or not priced (never counted as 0 then)."""
        return None if self.relay is None else self.relay.usd

    @property
    def telephony_usd(self) -> float | None:
        """A SIP call's minutes at its trunk's price; None for a call with no priced trunk."""
        return None if self.telephony is None else self.telephony.usd

    @property
    def metered_usd(self) -> float:
        """What the bot's reports price beyond its machine: the priced services and the priced relay
        (a key's spend adds this: dispatcher/sessions/budget_usage.py)."""
        return (self.services.usd if self.services is not None else 0.0) + (self.relay_usd or 0.0)

    @property
    def beyond_machine_usd(self) -> float:
        """The bot's metered use and a SIP call's minutes: everything but the machine."""
        return self.metered_usd + (self.telephony_usd or 0.0)

    @property
    def billed_usd(self) -> float:
        """What the session is billed, the one figure of its spend: its priced machine (with a warm
        bot's idle share), services and relay, as `GET /usage` and the daily file sum its rows and
        as its key's spend budget counts it (dispatcher/sessions/budget_usage.py); a SIP call's minutes too."""
        return (self.machine_usd or 0.0) + self.beyond_machine_usd

    @property
    def total(self) -> float | None:
        """The machine, the priced services, relay and minutes; None when the machine is not priced."""
        machine = self.machine_usd
        return None if machine is None else machine + self.beyond_machine_usd

    def as_json(self) -> dict[str, Any]:
        """The answer's and the ended webhook's `cost`; without a price, its amounts are left out."""
        price = self.price
        answer = {
            "currency": CURRENCY,
            "total": _usd(self.total),
            "machine_usd": _usd(self.machine_usd),
            "services": self.services.as_json() if self.services is not None else None,
            "relay_usd": _usd(self.relay_usd),
            "relay": self.relay.as_json() if self.relay is not None else None,
            "telephony_usd": _usd(self.telephony_usd),
            "telephony": self.telephony.as_json() if self.telephony is not None else None,
            "session_usd": _usd(self.session_usd),
            "idle_usd": _usd(self.idle_usd),
            "machine_seconds": round(self.machine_seconds, 3),
            "session_seconds": round(self.session_seconds, 3),
            "idle_seconds": round(self.idle_seconds, 3),
            "price_per_hour": None if price is None else round(price.dollars_per_second * 3600, 6),
            "provider": self.provider,
            "size": None if price is None else price.size,
            "price_source": None if price is None else price.source,
            "estimated": self.estimated,
            "not_counted": list(self.not_counted),
        }
        return {key: value for key, value in answer.items() if value is not None}


class SessionCosts:
    """Prices sessions on the deployment's provider, by one price: its bots are all one size."""

    def __init__(self, provider: str, price: BotPrice | None, clock: Callable[[], float] = time.time,
                 prices: PriceTable | None = None, relay: RelayPrice | None = None) -> None:
        self.provider = provider
        self.price = price
        self.prices = prices  # the services' table; None: the services are not priced here
        self.relay = relay  # the TURN relay's price per byte; None: a relayed call's relay is not priced
        self._clock = clock  # epoch seconds, as the timeline's events are
        # Where the bots' reports of their use during the call are kept (set by the wiring).
        self.so_far: SoFarKeeping | None = None
        self.transport_so_far: TransportKeeping | None = None  # and their WebRTC transport's

    async def of_session(self, session_id: str, events: Sequence[dict[str, Any]], *, running: bool,
                         ended_at: float | None = None, strict: bool = False) -> SessionCost | None:
        """`of`, with the services' use its bot last reported during the call where its end carries
        none (a bot killed before its `ended` report, or one still running). A store that does not
        answer leaves them not reported, or raises StoreUnavailable when `strict` (a count that is
        tried again)."""
        so_far, transport = None, None
        report = bots_end(events)
        try:
            if self.so_far is not None and (report is None or not isinstance(report.get("usage"), list)):
                so_far = await self.so_far.get(session_id)
            if self.transport_so_far is not None and (report is None or report.get("transport") is None):
                transport = await self.transport_so_far.get(session_id)
        except StoreUnavailable:
            if strict:
                raise
        return self.of(events, running=running, ended_at=ended_at, so_far=so_far, transport_so_far=transport)

    def of(self, events: Sequence[dict[str, Any]], *, running: bool, ended_at: float | None = None,
           so_far: Sequence[dict[str, Any]] | None = None,
           transport_so_far: dict[str, Any] | None = None) -> SessionCost | None:
        """The cost of the session whose timeline is `events` (in time order); None when no machine
        was launched or claimed for it. `running`: its machine is still active, so it is paid until
        now. `ended_at`: its end, when the caller knows it (the ended webhook's event). `so_far`: its
        services' use as the bot last reported it during the call, counted when its end carries none;
        `transport_so_far` its WebRTC transport likewise, for the relay's share."""
        start = next((e for e in events if e.get("event") in STARTS and _time(e.get("at")) is not None), None)
        if start is None:
            return None
        began = float(start["at"])
        report = bots_end(events)
        ended = ended_at if _time(ended_at) is not None else next(
            (_time(e.get("at")) for e in events if e.get("event") == "ended" and _time(e.get("at")) is not None), None)
        estimated = ended is None or report is None  # no bot's end: its services are as it last reported them
        if ended is None and not running:
            ended = _machine_end(events)
        if ended is None:
            ended = self._clock() if running else max(_time(e.get("at")) or began for e in events)
        idle = _time(start.get("idle_seconds")) if start.get("event") == "claimed" else 0.0
        not_counted = list(NOT_COUNTED)
        if idle is None:  # claimed, its idle time unknown here: a bot thawed from the frozen tier
            not_counted.append(THAWED)
        if self.price is None:
            not_counted.insert(0, UNPRICED)
        seconds = max(0.0, ended - began)
        services = None
        if self.prices is not None:
            usage = report.get("usage") if report is not None else None
            partial = not isinstance(usage, list) and so_far is not None
            services = price_usage(self.prices, list(so_far) if partial and so_far is not None else
                                   usage if isinstance(usage, list) else None, seconds)
            if partial:
                not_counted.append(PARTIAL)
            elif not services.reported:
                not_counted.append(NOT_YET if running and report is None else UNREPORTED)
            not_counted.extend(f"{name}: not priced" for name in services.unpriced)
            not_counted.extend(services.cut)
        transport = _transport(report) or transport_so_far
        relay = price_relay(self.relay, transport, seconds)
        live = running and report is None
        if live and not relay.measured:
            not_counted.append(RELAY_NOT_YET)
        else:
            not_counted.extend(relay.not_counted)
            if relay.measured and _transport(report) is None and not live:  # a bot killed before its end
                not_counted.append(PARTIAL_RELAY)
        telephony = price_telephony(events, now=self._clock(), running=running)
        if telephony is not None:
            not_counted.extend(telephony.not_counted)
        return SessionCost(self.provider, self.price, seconds, max(0.0, idle or 0.0),
                           estimated or (telephony is not None and telephony.any_live), tuple(not_counted), services,
                           relay, telephony)


def _machine_end(events: Sequence[dict[str, Any]]) -> float | None:
    """When the dispatcher decided the session's machine was over (machine_ends.py: once, at one
    replica): a stop or a write after it adds nothing to what the machine cost."""
    return next((at for e in events if e.get("event") == "machine_ended" and (at := _time(e.get("at"))) is not None),
                None)


def _transport(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The end's `transport`, checked again (the store is not the bot's to trust blindly)."""
    if report is None or report.get("transport") is None:
        return None
    try:
        return parse_transport(report["transport"])
    except UsageError:
        return None


def _time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _usd(dollars: float | None) -> float | None:
    return None if dollars is None else round(dollars, 6)


def bots_end(events: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The session's end that carries its bot's report of its services' use, where one does (the dispatcher may have
    ended an unanswered call first: its own `ended` carries none), else its first end; None without one."""
    ends = [e for e in events if e.get("event") == "ended"]
    return next((e for e in ends if isinstance(e.get("usage"), list)), ends[0] if ends else None)
