"""What this region's own settings say a pace bucket's rate is, for the home of a pace asked by
another region (dispatcher/regions/pace_homes.py): its carrier account's calls a second when the
bucket is its own account's, or the trunk's `cps` as its SIP edge lists it (its pace's and its
INVITEs'). None where it knows none (another account, a trunk its edge does not have, an edge
away): the asker's rate holds then."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.errors import ApiError
from dispatcher.phone.dialer import Dialer
from dispatcher.phone.trunk_calls import TrunkCalls
from dispatcher.regions.pace_homes import INVITES, OwnRate


def own_rates(dialers: Mapping[str, Dialer], trunks: TrunkCalls | None) -> OwnRate:
    async def own_rate(bucket: str) -> float | None:
        kind, _, name = bucket.partition(":")
        dialer = dialers.get(kind)
        if dialer is not None and dialer.account == name:
            return dialer.settings.calls_per_second
        if kind in ("trunk", INVITES) and trunks is not None:  # a trunk's INVITEs keep its `cps` too
            try:
                return (await trunks.trunk(name)).cps
            except ApiError:  # not a trunk of this region's edge, or the edge does not answer
                return None
        return None

    return own_rate
