"""Who may place calls through a carrier's Calls API, to which numbers and as which caller id (docs/phone.md,
"Who may call out"): `twilioCallers`, `twilioDestinations` and `twilioCallerIds`, lists in the stack file,
rendered to the dispatcher's comma-separated `TWILIO_CALLERS`, `TWILIO_DESTINATIONS`, `TWILIO_CALLER_IDS`.
Unset (or Pulumi.yaml's `[]`), the dispatcher's own: no key may call out, to any number but the risky
ones. The values are checked by the dispatcher's own parser with the carrier's pace
(stacks/config/calling_out.py); a caller must be one of `dispatcherApiKeys`' names, which the preview
checks once the secret is known (not offline, which sees a stand-in), as a caller no key has would leave
every call of its bot refused.
"""

from __future__ import annotations

import re

import pulumi

from dispatcher.phone.twilio_dial import dial_settings_from_env
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config.masked import is_stand_in
from stacks.config.reader import Reader

CLIENT_KEYS = "dispatcherApiKeys"
# The policy's stack keys of a carrier -> its dispatcher variables, by the key's suffix.
_POLICY = {"Callers": "CALLERS", "Destinations": "DESTINATIONS", "CallerIds": "CALLER_IDS"}
POLICY_SUFFIXES = tuple(_POLICY)


def policy_keys(carrier: str, prefix: str) -> dict[str, str]:
    """`twilio`, `TWILIO` -> {"twilioCallers": "TWILIO_CALLERS", …}."""
    return {f"{carrier}{suffix}": f"{prefix}_{variable}" for suffix, variable in _POLICY.items()}


TWILIO_KEYS = policy_keys("twilio", "TWILIO")


def dial_settings(cfg: Reader, prefix: str, pace_keys: dict[str, str], keys: dict[str, str],
                  client_keys: pulumi.Output[str]) -> dict[str, str]:
    """A carrier's pace (`pace_keys`) and policy (`keys`) that are set, variable -> value, checked by the
    dispatcher's own parser (`prefix` `TWILIO`, `TELNYX`) with its variables named by their keys."""
    found = {variable: value for key, variable in pace_keys.items() if (value := cfg.plain(key)) is not None}
    found |= rendered(cfg, keys)
    try:
        dial_settings_from_env(found, prefix)
    except DispatcherSettingsError as exc:
        raise refused_as_the_dispatcher(cfg, exc, {**pace_keys, **keys}) from None
    check_callers(cfg, keys, found, client_keys)
    return found


def refused_as_the_dispatcher(cfg: Reader, exc: DispatcherSettingsError, keys: dict[str, str]) -> Exception:
    """The dispatcher's refusal of the settings of `keys` (stack key -> variable), each variable it names
    written as its stack key, against the first key it names."""
    named = {variable: key for key, variable in keys.items()}
    pattern = re.compile(r"\b(" + "|".join(named) + r")\b")
    message = pattern.sub(lambda match: cfg.key(named[match[1]]), str(exc))
    return cfg.fail(named[found_in[1]] if (found_in := pattern.search(str(exc))) else next(iter(named.values())),
                    f"is refused as the dispatcher would refuse it: {message}")


def rendered(cfg: Reader, keys: dict[str, str]) -> dict[str, str]:
    """The policy's variables whose keys list something, variable -> the dispatcher's comma-separated text."""
    return {variable: ",".join(values) for key, variable in keys.items() if (values := _values(cfg, key))}


def check_callers(cfg: Reader, keys: dict[str, str], found: dict[str, str], client_keys: pulumi.Output[str]) -> None:
    """Refuses (once the secret is known) a caller of the rendered policy `found` that names no key of
    `dispatcherApiKeys`."""
    key, variable = next((key, variable) for key, variable in keys.items() if key.endswith("Callers"))
    if callers := found.get(variable):
        client_keys.apply(lambda text: _check_named(cfg, key, callers.split(","), text))


def key_names(text: str) -> set[str]:
    """The names of `DISPATCHER_API_KEYS`' `name:key` entries, split at the first ':' as the dispatcher splits
    them (dispatcher/settings `_api_keys`; `:key` is an unnamed key holding ':')."""
    return {name for part in text.split(",") if (name := part.strip().partition(":")[0]) and ":" in part}


def _check_named(cfg: Reader, key: str, callers: list[str], client_keys: str) -> None:
    """Only the keys' names reach the message, never a key. An offline run (`voicefleet config check
    --stack`, the plan) sees a stand-in for the secret, never its names: `pulumi up` checks them."""
    if is_stand_in(client_keys):
        return
    names = key_names(client_keys)
    if unknown := [caller for caller in callers if caller not in names]:
        raise cfg.fail(key, f"names {', '.join(map(repr, unknown))}, which is no key's name in "
                            f"{cfg.key(CLIENT_KEYS)} (its names: {', '.join(sorted(names)) or 'none'}): name the "
                            f"key there (NAME:KEY entries, pulumi config set --secret {CLIENT_KEYS} …) or list one "
                            "of its names")


def _values(cfg: Reader, key: str) -> tuple[str, ...]:
    raw = cfg.plain(key)
    if raw is None:
        return ()
    try:
        value = cfg.structured(key)
    except (ValueError, pulumi.config.ConfigTypeError):
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() and "," not in item
                                              for item in value):
        raise cfg.fail(key, f"must be a list of strings, each without ',' (a number quoted, '+14155550199', or "
                            f"YAML reads it as an integer): pulumi config set --path '{key}[0]' … (got {raw[:80]!r})")
    return tuple(item.strip() for item in value)
