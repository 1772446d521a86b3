"""Warm reserve sizing per stack: typed config keys → the dispatcher's RESERVE_* variables.

The values are checked by the dispatcher's own parser (dispatcher/reserve/policy.py), so a value
the dispatcher would refuse at start-up fails `pulumi preview` instead, with the config key named,
and the environment is written back from the parsed settings (`ReserveSettings.to_env`): no
variable name is spelled twice. docs/reserve.md explains the knobs and what a reserve costs.
"""

from __future__ import annotations

from dispatcher.reserve.policy import ReserveSettings
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config.reader import Reader, SettingsError

# Config key -> the dispatcher variable it sets. "" (the default of the last two) leaves the
# dispatcher's own default: the provider's published cold start, no schedule.
KEYS: dict[str, str] = {
    "reserveMinIdle": "RESERVE_MIN_IDLE",
    "reserveMaxIdle": "RESERVE_MAX_IDLE",
    "reserveBuffer": "RESERVE_BUFFER",
    "reserveBurst": "RESERVE_BURST",
    "reserveMaxIdleSeconds": "RESERVE_MAX_IDLE_SECONDS",
    "reserveScaledownSeconds": "RESERVE_SCALEDOWN_SECONDS",
    "reserveRateSample": "RESERVE_RATE_SAMPLE",
    "reserveColdStartSeconds": "RESERVE_COLD_START_SECONDS",
    "reserveSchedule": "RESERVE_SCHEDULE",
}


def load(cfg: Reader, machines: str, *, cold_start_seconds: float | None = None) -> ReserveSettings:
    """The stack's reserve sizing for the dispatcher's `machines` provider (ecs on AWS, gce on GCP);
    `cold_start_seconds`: the stack's own prior, for bots whose start its network lengthens, in
    place of the provider's (an operator's reserveColdStartSeconds still wins)."""
    env = {variable: cfg.string(key) for key, variable in KEYS.items()}
    if cold_start_seconds is not None and not env["RESERVE_COLD_START_SECONDS"]:
        env["RESERVE_COLD_START_SECONDS"] = repr(cold_start_seconds)
    try:
        return ReserveSettings.from_env(env, machines)
    except DispatcherSettingsError as exc:
        message = str(exc)
        # Longest first: RESERVE_MAX_IDLE is a prefix of RESERVE_MAX_IDLE_SECONDS.
        for key, variable in sorted(KEYS.items(), key=lambda item: -len(item[1])):
            message = message.replace(variable, cfg.key(key))
        raise SettingsError(f"Invalid stack configuration: {message}") from None
