"""What a key's sessions still running count against its spend budget: their machine so far, plus a
reserve for each: the deployment's start reserve (dispatcher/sessions/start_reserve.py), or the key's
average billed session this month when that is more, so a key's short sessions never lower it.

A session's services and a warm bot's idle share are priced only at its end, so without a reserve a
burst of starts saw none of them and all were admitted past the budget; the reserve is held from
the start's admission, in the same store script that takes its place, and gives way to the billed
figure as the session ends. One definition, in Lua (the store's scripts) and Python (one process's
ledger); docs/operations.md ("Budgets") has the figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ESTIMATED = "estimated:"  # before a spend field: the part of it a killed bot's last report gave

# Lua functions for the ledger's scripts: the reserve of a key's usage hash `used`, and its open
# sessions' spend in flight at `at` (epoch seconds) from their count and the sum of their starts.
IN_FLIGHT_FUNCTIONS = """
local function reserve_of(used, dollars_field, sessions_field, floor)
  local sessions = tonumber(redis.call('HGET', used, sessions_field) or '0') or 0
  if sessions <= 0 then return floor end
  local spent = tonumber(redis.call('HGET', used, dollars_field) or '0') or 0
  return math.max(floor, spent / sessions)
end
local function in_flight(count, since, at, dps, reserve)
  return math.max(0, count * at - since) * dps + count * reserve
end
"""


@dataclass(frozen=True)
class InFlight:
    """The deployment's machine price, its start reserve and this month's fields a key's reserve is worked out from."""

    dollars_per_second: float
    floor: float  # a running session's reserve at least, in dollars: the start reserve
    dollars_field: str  # the spend of this month's sessions counted, e.g. `counted:dollars:month:2026-11`
    sessions_field: str  # how many they are, e.g. `sessions:month:2026-11`

    def args(self) -> list[str]:
        """As the Lua functions take them: the price, the floor, the two fields."""
        return [repr(self.dollars_per_second), repr(self.floor), self.dollars_field, self.sessions_field]

    def reserve(self, used: Mapping[str, float]) -> float:
        sessions = used.get(self.sessions_field, 0.0)
        if sessions <= 0:
            return self.floor
        return max(self.floor, used.get(self.dollars_field, 0.0) / sessions)

    def dollars(self, count: float, since: float, at: float, used: Mapping[str, float]) -> float:
        """The spend in flight at `at` of `count` sessions open whose starts sum to `since`."""
        return max(0.0, count * at - since) * self.dollars_per_second + count * self.reserve(used)


NO_PRICE = InFlight(0.0, 0.0, "", "")  # a ledger read without a price: no spend in flight
