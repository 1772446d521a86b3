"""What each running session of a key holds against its spend budget at least, from its admission:
`BUDGET_START_RESERVE_USD`, or by default what a session can be billed at most as it starts (its
services' bound over the slack every session gets, dispatcher/usage/service_bounds.py, at the price
table's dearest rates, plus a minute of its machine), never below a cent. A session's services are
priced only at its end, so a smaller reserve (a minute of machine, 0 with no machine price) let a
burst of starts pass a budget. docs/operations.md ("Budgets") has the figures.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.usage.price_table import PriceTable
from dispatcher.usage.service_bounds import PER_SECOND, SLACK_SECONDS
from dispatcher.usage.service_cost import PARTS, UNPRICED_COUNTS
from voicefleet_settings.read import setting_float

SETTING = "BUDGET_START_RESERVE_USD"
MACHINE_SECONDS = 60.0  # the machine's part of the default: a minute (its time past that counts as it runs)
LEAST_USD = 0.01  # the default's floor: nothing priced still holds a burst


def services_bound_per_second(table: PriceTable) -> float:
    """The most a second of session can add to its services' bill: each count's bound a second at
    the dearest rate the table has for it. A part of a gross count (cache reads within prompt tokens)
    adds only what it costs over the total's own rate, as the bill prices it (service_cost.py)."""
    total = 0.0
    for kind, bounds in PER_SECOND.items():
        for count, per_second in bounds.items():
            if count in UNPRICED_COUNTS:
                continue
            dearest = 0.0
            for price in table.entries.values():
                rate = price.dollars_per(count) if price.kind == kind else None
                if rate is None:
                    continue
                whole = next((name for name, parts in PARTS.items() if count in parts), None)
                if price.prompt_includes_cache and whole is not None:
                    rate = max(0.0, rate - (price.dollars_per(whole) or 0.0))
                dearest = max(dearest, rate)
            total += per_second * dearest
    return total


def default_start_reserve(table: PriceTable | None, dollars_per_second: float | None) -> float:
    """What a session can be billed at most as it starts (its services over the slack, a minute of
    machine); `table` None: the services are not priced here."""
    services = services_bound_per_second(table) * SLACK_SECONDS if table is not None else 0.0
    return max(LEAST_USD, services + (dollars_per_second or 0.0) * MACHINE_SECONDS)


def start_reserve(env: Mapping[str, str], table: PriceTable | None, dollars_per_second: float | None) -> float:
    """The deployment's reserve per running session: the setting, else the default above."""
    return setting_float(env, SETTING, default=default_start_reserve(table, dollars_per_second))
