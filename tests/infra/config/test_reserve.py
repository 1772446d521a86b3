"""The warm reserve's stack config reaches the dispatcher as the RESERVE_* variables it reads."""

from __future__ import annotations

import pytest

from dispatcher.reserve.policy import ReserveSettings
from stacks.config.settings import SettingsError
from stacks.shared import contract
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_stack import dispatcher_container
from tests.infra.helpers import container


def aws_env(stack: StackRunner, **config: str) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(stack("aws", **config), "-dispatcher")["environment"]}


def gcp_env(stack: StackRunner, **config: str) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in dispatcher_container(stack("gcp", **config))["envs"]}


def reserve(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("RESERVE_")}


def test_an_unconfigured_stack_deploys_the_dispatchers_defaults(stack: StackRunner) -> None:
    assert reserve(aws_env(stack)) == ReserveSettings.from_env({}, "ecs").to_env()
    assert reserve(gcp_env(stack)) == ReserveSettings.from_env({}, "gce").to_env()
    assert set(reserve(aws_env(stack))) == set(contract.RESERVE_ENV)


def test_the_stack_config_sets_the_dispatchers_reserve(stack: StackRunner) -> None:
    env = aws_env(stack, reserveMinIdle="3", reserveMaxIdle="30", reserveBuffer="0.25", reserveBurst="1.5",
                  reserveMaxIdleSeconds="600", reserveScaledownSeconds="120", reserveRateSample="20",
                  reserveColdStartSeconds="55", reserveSchedule="08:00-18:00=5")
    assert ReserveSettings.from_env(env, "ecs") == ReserveSettings(
        min_idle=3, buffer=0.25, max_idle=30, max_idle_seconds=600.0, scaledown_seconds=120.0, burst=1.5,
        rate_sample=20, cold_start_seconds=55.0, schedule=ReserveSettings.from_env(
            {"RESERVE_SCHEDULE": "08:00-18:00=5"}).schedule,
    )


def test_a_schedule_reaches_cloud_run_too(stack: StackRunner) -> None:
    env = gcp_env(stack, reserveSchedule="22:00-06:00=2")
    assert env["RESERVE_SCHEDULE"] == "22:00-06:00=2"
    assert set(contract.RESERVE_SCHEDULE_ENV) <= set(env)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"reserveBuffer": "lots"}, "voicefleet:reserveBuffer='lots' is not a number"),
        ({"reserveMinIdle": "-1"}, "voicefleet:reserveMinIdle=-1 must be at least 0"),
        ({"reserveMaxIdleSeconds": "5"}, "voicefleet:reserveMaxIdleSeconds=5 must be at least 10"),
        ({"reserveMinIdle": "5", "reserveMaxIdle": "3"}, "voicefleet:reserveMaxIdle=3 is below the minimum idle"),
        ({"reserveSchedule": "9-5"}, "voicefleet:reserveSchedule: '9-5' is not a window"),
    ],
)
def test_a_bad_reserve_value_fails_the_preview_naming_the_config_key(
    stack: StackRunner, config: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        stack("aws", **config)
    assert f"Invalid stack configuration: {named}" in str(caught.value)
