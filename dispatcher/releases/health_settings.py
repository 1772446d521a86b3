"""The automatic rollback's rule as a deployment sets it: how many sessions it needs before it judges
(`RELEASE_HEALTH_MIN_CANARY`, `RELEASE_HEALTH_MIN_STABLE`), how much worse a canary's conversation
must be (`RELEASE_HEALTH_TURN_LATENCY_MARGIN_SECONDS`, `_CONVERSATION_MARGIN`, `_CUT_OFF_MARGIN`),
how long a caller's wait for a bot may be before the stable release has a time to ready
(`START_WAIT_SECONDS`) and whether it acts at all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from dispatcher.releases.health import HealthRule
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_bool, setting_float, setting_int


def health_rule(env: Mapping[str, str]) -> HealthRule:
    default = HealthRule()
    rule = replace(default,
                   min_canary=setting_int(env, "RELEASE_HEALTH_MIN_CANARY"),
                   min_stable=setting_int(env, "RELEASE_HEALTH_MIN_STABLE"),
                   turn_latency_margin_seconds=setting_float(env, "RELEASE_HEALTH_TURN_LATENCY_MARGIN_SECONDS"),
                   conversation_margin=setting_float(env, "RELEASE_HEALTH_CONVERSATION_MARGIN"),
                   cut_off_margin=setting_float(env, "RELEASE_HEALTH_CUT_OFF_MARGIN"),
                   start_wait_seconds=setting_float(env, "START_WAIT_SECONDS"))
    if rule.window < max(rule.min_canary, rule.min_stable):
        raise SettingsError(f"RELEASE_HEALTH_MIN_CANARY and RELEASE_HEALTH_MIN_STABLE are at most {rule.window}, the "
                            "sessions each release keeps for its judgement")
    return rule


def rollback_on(env: Mapping[str, str]) -> bool:
    """`RELEASE_AUTO_ROLLBACK=off`: releases are judged and shown, never rolled back by the dispatcher."""
    return setting_bool(env, "RELEASE_AUTO_ROLLBACK")
