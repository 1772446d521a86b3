"""Where the dispatcher may hand a call to a person, and for how long (docs/phone.md, "Handing a call to a
person"): `phoneTransferTargets`, a list in the stack file rendered to the dispatcher's comma-separated
`PHONE_TRANSFER_TARGETS`, and `phoneTransferTimeLimitSeconds` (`PHONE_TRANSFER_TIME_LIMIT_SECONDS`; 0, the
dispatcher's own). Without the list every transfer is refused `403 transfer_targets_unset`, whatever
carrier credentials the stack sets. Both are plain: numbers and host names, no credential. Checked by the
dispatcher's own parsers, so a value it would refuse at start-up fails the preview with the key named; a
prefix as short as a country calling code (three digits or fewer) is warned of, as it reaches every number
of a country or more, that country's own premium-rate ones included."""

from __future__ import annotations

import pulumi

from dispatcher.phone.transfer_allow import SETTING, parse_transfer_targets
from stacks.config.call_callers import rendered
from stacks.config.reader import Reader
from voicefleet_settings.call_policy import RISKY_PREFIXES
from voicefleet_settings.read import SettingsError, setting_int

TARGETS_KEY = "phoneTransferTargets"
TARGETS_VARIABLE = SETTING
TIME_LIMIT_KEY = "phoneTransferTimeLimitSeconds"
TIME_LIMIT_VARIABLE = "PHONE_TRANSFER_TIME_LIMIT_SECONDS"
COUNTRY_CODE_DIGITS = 3  # E.164 country calling codes have one to three digits
KEYS = {TARGETS_KEY: TARGETS_VARIABLE, TIME_LIMIT_KEY: TIME_LIMIT_VARIABLE}


def load(cfg: Reader) -> dict[str, str]:
    """The settings of the keys that are set, variable -> value, as the dispatcher will read them."""
    found = rendered(cfg, {TARGETS_KEY: TARGETS_VARIABLE})
    if targets := found.get(TARGETS_VARIABLE):
        try:
            parsed = parse_transfer_targets(targets)
        except ValueError as exc:
            raise cfg.fail(TARGETS_KEY, "is refused as the dispatcher would refuse it: "
                                        + str(exc).replace(TARGETS_VARIABLE, cfg.key(TARGETS_KEY))) from None
        for wide in wide_prefixes(parsed.patterns if parsed else ()):
            pulumi.log.warn(wide_prefix_warning(cfg.key(TARGETS_KEY), wide))
    # Pulumi.yaml's default, 0, is handed to `pulumi up` for an unset key: the dispatcher's own then.
    if (limit := cfg.plain(TIME_LIMIT_KEY)) is not None and limit != "0":
        try:
            seconds = setting_int({TIME_LIMIT_VARIABLE: limit}, TIME_LIMIT_VARIABLE)
        except SettingsError as exc:
            raise cfg.fail(TIME_LIMIT_KEY, "is refused as the dispatcher would refuse it: "
                                           + str(exc).replace(TIME_LIMIT_VARIABLE, cfg.key(TIME_LIMIT_KEY))) from None
        found[TIME_LIMIT_VARIABLE] = str(seconds)
    return found


def wide_prefixes(patterns: tuple[str, ...]) -> list[str]:
    """The `+prefix*` patterns no longer than a country calling code."""
    return [pattern for pattern in patterns if pattern.endswith("*") and len(pattern) - 2 <= COUNTRY_CODE_DIGITS]


def wide_prefix_warning(key: str, prefix: str) -> str:
    refused = ", ".join(risky for risky in RISKY_PREFIXES if risky.startswith(prefix[:-1]))
    spared = f" ({refused} only when listed as closely)" if refused else ""
    return (f"{key}: {prefix!r} is as wide as a country calling code: a bot the caller talks into it may hand the "
            f"call to any number of that country or more, its premium-rate ones included{spared}. List your desks' "
            "numbers or a longer prefix (+1415*), and turn on only the countries you call in your carrier's "
            "geographic permissions")
