"""Warm reserve sizing per stack: typed config keys → the dispatcher's RESERVE_* variables.

The values are checked by the dispatcher's own parser (dispatcher/reserve/policy.py), so a value
the dispatcher would refuse at start-up fails `pulumi preview` instead, with the config key named,
and the environment is written back from the parsed settings (`ReserveSettings.to_env`): no
variable name is spelled twice. docs/reserve.md explains the knobs and what a reserve costs.

A k8s stack with `k8sCells` runs no reserve: it does not run over several clusters, and the dispatcher
refuses one set with K8S_CELLS. Its reserve keys set to ask for warm bots are refused at preview, and
the reserve is written off (RESERVE_MIN_IDLE and RESERVE_MAX_IDLE 0), whatever the size derives.
"""

from __future__ import annotations

import dataclasses

from dispatcher.reserve.policy import ReserveSettings
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config import cells as stack_cells
from stacks.config.k8s_cells import CELLS_KEY as K8S_CELLS_KEY
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
        settings = ReserveSettings.from_env(env, machines)
    except DispatcherSettingsError as exc:
        message = str(exc)
        # Longest first: RESERVE_MAX_IDLE is a prefix of RESERVE_MAX_IDLE_SECONDS.
        for key, variable in sorted(KEYS.items(), key=lambda item: -len(item[1])):
            message = message.replace(variable, cfg.key(key))
        raise SettingsError(f"Invalid stack configuration: {message}") from None
    if machines == "k8s" and not stack_cells.none_listed(cfg.plain(K8S_CELLS_KEY)):
        return _cold_over_cells(cfg, settings)
    return settings


def _cold_over_cells(cfg: Reader, settings: ReserveSettings) -> ReserveSettings:
    """No reserve over `k8sCells` (the module says why): a key set to ask for warm bots refused, naming it."""
    wants = {"reserveMinIdle": settings.min_idle > 0, "reserveMaxIdle": settings.max_idle > 0,
             "reserveSchedule": any(window.min_idle > 0 for window in settings.schedule)}
    for key, warm in wants.items():
        if warm and cfg.raw(key) is not None:
            cells = cfg.command_key(K8S_CELLS_KEY)
            raise cfg.fail(key, f"asks for warm bots, but with {cfg.key(K8S_CELLS_KEY)} every session starts cold: "
                                "the warm reserve does not run over several clusters, and the dispatcher refuses "
                                f"one set. Remove it (`pulumi config rm {cfg.command_key(key)}`) to start every "
                                f"session cold, or run one cluster (`pulumi config rm {cells}`) to keep a warm "
                                "reserve (docs/kubernetes.md, \"Several clusters\")")
    return dataclasses.replace(settings, min_idle=0, max_idle=0, schedule=())
