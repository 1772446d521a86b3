"""Who may place calls through a trunk, to which numbers, and as which caller id
(docs/sip.md#who-may-call-through-a-trunk). The trunk's owner pays for every call it carries, so a
trunk places calls only for the API key names its `callers` lists; `destinations` are E.164
patterns (`+1*`: any number starting +1; no `*`: that number alone), and a premium-rate or
emergency number is refused unless a pattern names it at least as closely as RISKY_PREFIXES do;
`caller_ids` are the `from` numbers it may show, the trunk's own `numbers` when unset."""

from __future__ import annotations

import re
from typing import Protocol

DESTINATION = re.compile(r"^\+[0-9]*\*?$")
ANY_NUMBER = "+*"
# Emergency short numbers written as E.164 (+911, +112, …: dialled through a trunk they reach a real
# emergency centre, and a carrier bills a call from a number without an emergency address), premium
# rate (+1900, +1976) and international networks billed at satellite rates (+881, +882, +883, +870, +979).
RISKY_PREFIXES = ("+911", "+112", "+999", "+110", "+119", "+1900", "+1976", "+870", "+881", "+882", "+883",
                  "+979")


class Trunk(Protocol):
    """What the policy reads of a trunk (sipedge.config.Trunk), named here so the policy needs no config."""

    @property
    def name(self) -> str: ...
    @property
    def callers(self) -> tuple[str, ...]: ...
    @property
    def destinations(self) -> tuple[str, ...]: ...
    @property
    def caller_ids(self) -> tuple[str, ...]: ...


def _prefix(pattern: str) -> str:
    return pattern.removesuffix("*")


def _matches(pattern: str, number: str) -> bool:
    return number.startswith(_prefix(pattern)) if pattern.endswith("*") else number == pattern


def destination_allowed(destinations: tuple[str, ...], number: str) -> bool:
    """`number` matches a pattern, and a risky number only one naming at least its risky prefix."""
    risky = [prefix for prefix in RISKY_PREFIXES if number.startswith(prefix)]
    return any(_matches(pattern, number) and all(len(_prefix(pattern)) >= len(prefix) or not pattern.endswith("*")
                                                 for prefix in risky)
               for pattern in destinations)


def refusal(trunk: Trunk, caller: str, to: str, caller_id: str) -> str | None:
    """Why the key named `caller` may not call `to` as `caller_id` through `trunk`; None when it may."""
    where = f"trunk {trunk.name!r}"
    if caller not in trunk.callers:
        listed = ", ".join(trunk.callers) or "none"
        return (f"the key {caller!r} may not place calls through {where}: add its name to the trunk's `callers` "
                f"in the edge's file (now: {listed})")
    if not destination_allowed(trunk.destinations, to):
        return (f"{where} does not call {to}: its `destinations` ({', '.join(trunk.destinations) or 'none'}) do not "
                "allow it (premium-rate and emergency numbers only when a pattern names them)")
    if caller_id not in trunk.caller_ids:
        return (f"{where} does not call from {caller_id}: its `caller_ids` (by default the trunk's own `numbers`) "
                f"are {', '.join(trunk.caller_ids) or 'none'}")
    return None
