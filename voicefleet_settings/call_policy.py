"""Who may place calls, to which numbers, and as which caller id: one policy for a SIP trunk's calls
(docs/sip.md#outbound-calls, read by the SIP edge) and for calls placed through Twilio's or
Telnyx's Calls API (docs/phone.md#who-may-call-out, read by the dispatcher). Here, below both, since the
edge imports nothing of the dispatcher's. The account pays for every call, so a call goes out only for the
API key names `callers` lists; `destinations` are E.164 patterns (`+1*`: any number starting +1; no `*`:
that number alone), and a premium-rate or emergency number is refused unless a pattern names it at least as
closely as RISKY_PREFIXES do; `caller_ids` are the `from` numbers a call may show."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

DESTINATION = re.compile(r"^\+[0-9]*\*?$")
ANY_NUMBER = "+*"
INBOUND_ONLY = "trunk_inbound_only"  # the error code of a call through a trunk without a termination URI
# Emergency short numbers written as E.164 (+911, +112, …: dialled through a trunk they reach a real
# emergency centre, and a carrier bills a call from a number without an emergency address), premium
# rate (+1900, +1976) and international networks billed at satellite rates (+881, +882, +883, +870, +979).
RISKY_PREFIXES = ("+911", "+112", "+999", "+110", "+119", "+1900", "+1976", "+870", "+881", "+882", "+883",
                  "+979")


class CallPolicy(Protocol):
    """What the policy reads of a trunk (sipedge.config.Trunk) or a carrier's settings, named here so the
    policy needs neither."""

    @property
    def callers(self) -> tuple[str, ...]: ...
    @property
    def destinations(self) -> tuple[str, ...]: ...
    @property
    def caller_ids(self) -> tuple[str, ...]: ...


class Trunk(CallPolicy, Protocol):
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Wording:
    """How a refusal names where the call would go and where each rule is changed."""

    where: str  # "trunk 'main'", "Twilio"
    callers: str  # "the trunk's `callers` in the edge's file", "TWILIO_CALLERS"
    destinations: str
    caller_ids: str


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


def policy_refusal(policy: CallPolicy, words: Wording, caller: str, to: str, caller_id: str) -> str | None:
    """Why the key named `caller` may not call `to` as `caller_id` under `policy`; None when it may."""
    if caller not in policy.callers:
        listed = ", ".join(policy.callers) or "none"
        return (f"the key {caller!r} may not place calls through {words.where}: add its name to "
                f"{words.callers} (now: {listed})")
    if not destination_allowed(policy.destinations, to):
        return (f"{words.where} does not call {to}: {words.destinations} ({', '.join(policy.destinations) or 'none'})"
                " do not allow it (premium-rate and emergency numbers only when a pattern names them)")
    if caller_id not in policy.caller_ids:
        return (f"{words.where} does not call from {caller_id}: {words.caller_ids} are "
                f"{', '.join(policy.caller_ids) or 'none'}")
    return None


def refusal(trunk: Trunk, caller: str, to: str, caller_id: str) -> str | None:
    """Why the key named `caller` may not call `to` as `caller_id` through `trunk`; None when it may."""
    words = Wording(f"trunk {trunk.name!r}", "the trunk's `callers` in the edge's file", "its `destinations`",
                    "its `caller_ids` (by default the trunk's own `numbers`)")
    return policy_refusal(trunk, words, caller, to, caller_id)


def inbound_only(name: str, outbound: Iterable[str]) -> str:
    """Why a call through trunk `name`, which takes calls in only, is refused, and the way out: the edge's
    words (sipedge/control.py) and the dispatcher's, which refuses it before asking the edge."""
    others = ", ".join(sorted(outbound)) or "none yet"
    return (f"trunk {name!r} takes calls in only: no call goes out through it until it has a termination_uri "
            "(in a stack's sipEdge key, the trunk's terminationUri; docs/sip.md#outbound-calls). The trunks that "
            f"place calls: {others}")
