"""The TURN relay's price per byte: the internet egress of the cloud the relay runs in, from the
price table's `relay_egress` (dispatcher/usage/prices.json, each price dated and cited), chosen by
the deployment's machines provider (the stacks run the relay in the bots' cloud: stacks/aws/relay.py,
stacks/gcp/relay.py, stacks/azure/relay.py), or `TURN_RELAY_USD_PER_GB` for a relay run elsewhere (a
hosted TURN service, a negotiated rate). A provider with neither is "not priced", never 0.

What is priced differs by where the relay runs (docs/operations.md has the reasoning): the cloud's
own relay pays egress on what it forwards to the caller (the bot's `bytes_sent`), its leg to the bot
stays inside the cloud; a hosted relay bills what it carries both ways.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dispatcher.settings import SettingsError
from dispatcher.usage.price_table import BUILT_IN
from voicefleet_settings.read import setting_float

SETTING = "TURN_RELAY_USD_PER_GB"
BYTES_PER = {"GB": 1e9, "GiB": float(2**30)}
# The machines providers whose stack runs the relay in a cloud of the table (dispatcher/machines/).
CLOUD_OF = {"ecs": "aws", "gce": "gcp", "cloudrun": "gcp", "aci": "azure"}


@dataclass(frozen=True)
class RelayPrice:
    usd_per_byte: float
    source: str
    both_ways: bool  # True: the relay bills what it carries to both peers (hosted); False: to the caller only

    @property
    def usd_per_gb(self) -> float:
        return self.usd_per_byte * BYTES_PER["GB"]


def relay_price(env: Mapping[str, str], provider: str, built_in: Path = BUILT_IN) -> RelayPrice | None:
    """The deployment's relay price; None when neither the setting nor the table prices it."""
    dollars = setting_float(env, SETTING, default=math.nan)  # nan: unset (the reader refuses nan itself)
    if not math.isnan(dollars):
        return RelayPrice(dollars / BYTES_PER["GB"], f"as {SETTING} prices it", both_ways=True)
    cloud = CLOUD_OF.get(provider)
    if cloud is None:
        return None
    return table_price(json.loads(built_in.read_text()), cloud)


def table_price(document: object, cloud: str) -> RelayPrice | None:
    """The table's price for `cloud`; raises `SettingsError` for an entry not as the table has them."""
    table = document.get("relay_egress") if isinstance(document, dict) else None
    entries = table.get("prices") if isinstance(table, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("cloud") != cloud:
            continue
        usd, per, source = entry.get("usd"), entry.get("per"), entry.get("source")
        if (isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd) or usd < 0
                or per not in BYTES_PER or not isinstance(source, str) or not source):
            raise SettingsError(f"prices.json: relay_egress for {cloud} needs usd ≥ 0, per GB or GiB, and a source")
        return RelayPrice(usd / BYTES_PER[per], f"{source}; seen {entry.get('seen', '')}".strip("; "),
                          both_ways=False)
    return None
