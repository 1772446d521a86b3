"""The TURN relay's share of a session's cost: the bytes its WebRTC call sent through the relay, as
its bot host measured them (botchannel/transport_use.py), at the relay's price per byte
(dispatcher/usage/relay_price.py).

    relayed   a relay candidate in the call's selected ICE pair (either side)
    bytes     the caller's leg (`bytes_sent`; a hosted relay: + `bytes_received`), each packet with
              `PACKET_OVERHEAD_BYTES` for the IPv4 and UDP headers and TURN's ChannelData header
              that aiortc's payload counts leave out
    usd       bytes × the price; a call not relayed: 0, said; no price: "not priced", never 0

A bot is trusted no further than its report's bounds: past `MAX_BYTES_PER_SECOND` over the
session's seconds (far above any voice call, video included), its count is cut there and said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botchannel.transport_use import relayed
from dispatcher.usage.relay_price import RelayPrice

PACKET_OVERHEAD_BYTES = 20 + 8 + 4  # IPv4 + UDP + TURN ChannelData (RFC 8656 §12.4), per relayed packet
# The stack's coturn lets an allocation carry 64 KiB/s each way (stacks/shared/turn_server.py,
# `max-bps`, in and out counted apart): a bot's count past both is not what the relay forwarded.
# A voice call carries ~10 kB/s each way.
MAX_BYTES_PER_SECOND = 2 * 64 * 1024.0
SLACK_SECONDS = 10.0  # the bot's clock and the machine's differ; a short call is not cut for it
NOT_MEASURED = "TURN relay: its bot reported no WebRTC transport (a phone or Daily call, or a bot killed first)"
NOT_RELAYED = "none: the call's media went direct (no relay candidate in its selected pair)"
UNPRICED = ("TURN relay: not priced (no egress price for this provider's cloud; TURN_RELAY_USD_PER_GB "
            "sets one)")
CUT = "TURN relay: the bot's byte count past what the relay lets a call carry (1 Mbit/s), cut there"


@dataclass(frozen=True)
class RelayCost:
    transport: Mapping[str, Any] | None  # None: not reported
    price: RelayPrice | None
    priced_bytes: float  # what the relay bills, estimated from the counts (0 when not relayed)
    cut: bool  # the bot's count went past the bound and was cut there

    @property
    def measured(self) -> bool:
        return self.transport is not None

    @property
    def relayed(self) -> bool:
        return self.transport is not None and relayed(self.transport)

    @property
    def usd(self) -> float | None:
        """0 for a call not relayed; None when not measured, or relayed and not priced."""
        if not self.measured:
            return None
        if not self.relayed:
            return 0.0
        return None if self.price is None else self.priced_bytes * self.price.usd_per_byte

    @property
    def not_counted(self) -> list[str]:
        if not self.measured:
            return [NOT_MEASURED]
        return ([UNPRICED] if self.relayed and self.price is None else []) + ([CUT] if self.cut else [])

    def as_json(self) -> dict[str, Any] | None:
        if self.transport is None:
            return None
        shown: dict[str, Any] = {"relayed": self.relayed, **self.transport}
        usd = self.usd
        if not self.relayed:
            shown.update(usd=0.0, why=NOT_RELAYED)
        elif usd is None:
            shown.update(priced="not priced", why=UNPRICED.removeprefix("TURN relay: not priced ").strip("()"))
        else:
            assert self.price is not None
            shown.update(usd=round(usd, 6), priced_bytes=round(self.priced_bytes),
                         usd_per_gb=round(self.price.usd_per_gb, 6), price_source=self.price.source,
                         both_ways=self.price.both_ways)
        return shown


def price_relay(price: RelayPrice | None, transport: Mapping[str, Any] | None, seconds: float) -> RelayCost:
    """`transport` as botchannel/transport_use.py checked it, or None; `seconds`: the session's."""
    if transport is None or not relayed(transport):
        return RelayCost(transport, price, 0.0, cut=False)
    both = price is None or price.both_ways
    sent = float(transport["bytes_sent"]) + PACKET_OVERHEAD_BYTES * float(transport["packets_sent"])
    received = float(transport["bytes_received"]) + PACKET_OVERHEAD_BYTES * float(transport["packets_received"])
    bound = MAX_BYTES_PER_SECOND * (max(0.0, seconds) + SLACK_SECONDS) * (2 if both else 1)
    wanted = sent + (received if both else 0.0)
    return RelayCost(transport, price, min(wanted, bound), cut=wanted > bound)
