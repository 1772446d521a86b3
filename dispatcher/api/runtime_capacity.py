"""The capacity values an admin changes at runtime (`PATCH /capacity`, `voicefleet capacity set`), each
over the setting it starts from, and how a replica applies them.

A setting is the floor a value starts from: with no runtime value the setting applies; a runtime
value replaces it, above or below (it is no minimum); removing the runtime value (`null`,
`NAME=default` in the CLI) returns to the setting. For each name:

    sessions        MAX_CONCURRENT_SESSIONS: the session cap of the deployment
    key.NAME        KEY_SESSION_SHARE: key NAME's fraction of the session cap (others keep the setting)
    reserve.min     RESERVE_MIN_IDLE: the reserve's floor of ready bots
    reserve.max     RESERVE_MAX_IDLE: the reserve's ceiling of running idle bots (above 0)
    reserve.target  none: the planner's forecast sizes the reserve; a value pins its ready target (kept
                    within reserve.min and reserve.max)
    provider.NAME   none: the provider takes what the session cap allows; a value caps the sessions
                    on provider NAME (this deployment's MACHINES) below it
    budget.KEY.KIND none: key KEY starts freely; a value is its budget (dispatcher/sessions/budgets.py)

A cap lowered below what runs applies to new starts only: nothing running is stopped, a start is
refused (429 at_capacity, key_at_capacity) until enough sessions end. The reserve's bots above a
lowered ceiling are retired by its next plans, as idle bots above the plan always are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import Reserve
from dispatcher.sessions import budgets
from dispatcher.sessions.service import SessionService

FIXED = ("sessions", "reserve.min", "reserve.max", "reserve.target")
MAX_SESSIONS = 1_000_000
MAX_IDLE = 100_000
_NAMED = re.compile(r"^(key|provider)\.([a-z0-9][a-z0-9-]{0,62})$")


@dataclass(frozen=True)
class Floors:
    """What the settings say, the values runtime changes start from."""

    sessions: int
    key_share: float
    reserve: ReserveSettings | None  # None: the reserve is off (or not this provider's)
    provider: str  # MACHINES

    def setting(self, name: str) -> float | int | None:
        if name == "sessions":
            return self.sessions
        if name == "reserve.min":
            return self.reserve.min_idle if self.reserve is not None else 0
        if name == "reserve.max":
            return self.reserve.max_idle if self.reserve is not None else 0
        if name.startswith("key."):
            return self.key_share
        return None  # reserve.target, provider.NAME: none unless set


def checked(change: Mapping[str, Any], current: Mapping[str, Any], floors: Floors,
            key_names: set[str]) -> dict[str, Any]:
    """The runtime values after `change` (a value per name, `None` removes it), or 400 naming the
    first name or value that is wrong and what to send instead."""
    if not isinstance(change, Mapping) or not change:
        raise ApiError(400, "invalid_capacity_change", "send a JSON object of names and values, e.g. "
                       '{"sessions": 200, "reserve.max": 20, "key.acme": 0.5}; null returns a name to its setting',
                       extra={})
    values = readable(current, floors)
    for name, value in change.items():
        _check_name(str(name), floors, key_names)
        if value is None:
            values.pop(name, None)
            continue
        values[name] = _check_value(name, value)
    low, high = _effective(values, "reserve.min", floors), _effective(values, "reserve.max", floors)
    if floors.reserve is not None and low is not None and high is not None and low > high:
        raise ApiError(400, "invalid_capacity_change", f"reserve.min {low} is above reserve.max {high}: raise "
                       "reserve.max too, in the same change", extra={})
    return values


def readable(values: Mapping[str, Any], floors: Floors) -> dict[str, Any]:
    """The values of a record read from the store that `checked` would have let in: one it would have
    refused (a record written by something else, or damaged) is dropped, so its setting applies,
    rather than reaching admission as a string, a negative cap or a share above 1."""
    kept: dict[str, Any] = {}
    for name, value in values.items() if isinstance(values, Mapping) else ():
        if not known_name(name):
            continue
        try:
            kept[name] = _check_value(name, value)
        except ApiError:
            continue
    low, high = _effective(kept, "reserve.min", floors), _effective(kept, "reserve.max", floors)
    if low is not None and high is not None and low > high:
        kept.pop("reserve.min", None)
        kept.pop("reserve.max", None)
    return kept


def known_name(name: object) -> bool:
    """Whether `name` is of a capacity value in some region (its key, provider and reserve aside)."""
    return isinstance(name, str) and (name in FIXED or _NAMED.fullmatch(name) is not None
                                      or budgets.parsed(name) is not None)


def value_checked(name: str, value: object) -> float | int:
    """`value` for `name` within the bounds `checked` keeps, or 400 saying them (another region's
    value is taken on the same terms as an admin's here)."""
    return _check_value(name, value)


def _check_name(name: str, floors: Floors, key_names: set[str]) -> None:
    if budgets.parsed(name) is not None:
        return  # a budget for a key not made yet is kept, with a warning (`unknown_keys`)
    named = _NAMED.match(name)
    if name not in FIXED and named is None:
        raise ApiError(400, "unknown_capacity", f"{name[:80]!r} is no capacity value: use sessions, reserve.min, "
                       "reserve.max, reserve.target, key.NAME, provider.NAME or budget.KEY.KIND (KIND: "
                       f"{', '.join(budgets.KINDS)}; GET /capacity lists them)", extra={})
    if name.startswith("reserve.") and floors.reserve is None:
        raise ApiError(400, "reserve_off", f"{name}: this deployment runs no reserve (RESERVE_MAX_IDLE=0 or a "
                       "provider without one); turn it on in the settings and restart, then change its bounds here",
                       extra={})
    if named is not None and named.group(1) == "key" and named.group(2) not in key_names:
        raise ApiError(400, "unknown_key", f"{name}: no API key is named {named.group(2)!r} (`voicefleet keys list` "
                       "shows the names; a key of DISPATCHER_API_KEYS needs its `name:` to have a share)", extra={})
    if named is not None and named.group(1) == "provider" and named.group(2) != floors.provider:
        raise ApiError(400, "unknown_provider", f"{name}: this deployment launches on {floors.provider} "
                       f"(MACHINES): use provider.{floors.provider}", extra={})


def _check_value(name: str, value: object) -> float | int:
    if budgets.parsed(name) is not None:
        return budgets.value_checked(name, value)
    if name.startswith("key."):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise ApiError(400, "invalid_capacity_value", f"{name}={value!r}: a key's share is a fraction of the "
                           "session cap, above 0 and at most 1 (e.g. 0.5)", extra={})
        return float(value)
    most = MAX_SESSIONS if name in ("sessions",) or name.startswith("provider.") else MAX_IDLE
    least = 1 if name in ("reserve.max", "reserve.target") else 0
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ApiError(400, "invalid_capacity_value", f"{name}={value!r}: a whole number from {least} to {most}",
                       extra={})
    return value


def _effective(values: Mapping[str, Any], name: str, floors: Floors) -> Any:
    return values[name] if name in values else floors.setting(name)


def unknown_keys(change: Mapping[str, Any], key_names: set[str]) -> list[str]:
    """The key names `change` sets a budget for that no key has (kept: the key may be made next)."""
    named = (budgets.parsed(name) for name, value in change.items() if value is not None)
    return sorted({found[0] for found in named if found is not None and found[0] not in key_names})


def listing(values: Mapping[str, Any], floors: Floors, key_names: set[str],
            in_use: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """Each value as `GET /capacity` shows it: what applies, the setting, the runtime value, what is in use."""
    names = [*FIXED, *(f"key.{n}" for n in sorted(key_names)), f"provider.{floors.provider}"]
    names += sorted(n for n in values if n not in names)
    return {name: {"value": _effective(values, name, floors), "setting": floors.setting(name),
                   "runtime": values.get(name), "in_use": in_use.get(name)}
            for name in names if not (name.startswith("reserve.") and floors.reserve is None)}


def apply(values: Mapping[str, Any], floors: Floors, sessions: SessionService, reserve: Reserve | None,
          caller_of_name: Callable[[str], str], callers: int) -> None:
    """Makes this replica admit, share and plan by `values` from its next start (or reserve tick) on."""
    values = readable(values, floors)
    cap = _effective(values, "sessions", floors)
    provider = values.get(f"provider.{floors.provider}")
    limit = cap if provider is None else min(cap, provider)
    sessions.admission.limit = limit
    fractions = {caller_of_name(name[4:]): share for name, share in values.items() if name.startswith("key.")}
    sessions.share.resize(limit, fractions, callers)
    sessions.budgets.limit(values)
    if reserve is not None and floors.reserve is not None:
        settings = reserve_settings(values, floors.reserve)
        reserve.resize(settings)
        sessions.share.resize_warm(settings.max_idle)  # each key's warm share follows the reserve's ceiling


def reserve_settings(values: Mapping[str, Any], base: ReserveSettings) -> ReserveSettings:
    """The reserve's settings with the runtime bounds; a target pins both to it (within them)."""
    low = int(values.get("reserve.min", base.min_idle))
    high = int(values.get("reserve.max", base.max_idle))
    target = values.get("reserve.target")
    if target is not None:
        low = high = max(low, min(high, int(target)))
    return replace(base, min_idle=low, max_idle=high)
