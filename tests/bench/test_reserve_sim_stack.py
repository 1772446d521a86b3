"""The simulator reads a shipped stack's reserve settings as the stacks pass them on."""

from __future__ import annotations

import re

import pytest
import yaml

from bench import reserve_sim
from bench.reserve_sim_stack import ROOT, StackError, load_stack, stack_names, variable_for
from dispatcher.reserve.policy import ReserveSettings


def test_every_shipped_stack_is_found() -> None:
    assert {"aws-prod", "gcp-prod", "aws-dev", "gcp-dev"} <= set(stack_names())


def test_a_reserve_key_names_the_variable_its_description_names() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    reserve = {key: spec for key, spec in declared.items() if key.startswith("reserve")}
    assert reserve
    for key, spec in reserve.items():
        assert re.search(rf"\({variable_for(key)}[,)]", spec["description"]), key


def test_the_prod_stack_keeps_the_recommended_three_idle_no_buffer_and_four_hundred_at_most() -> None:
    stack = load_stack("aws-prod")
    settings = ReserveSettings.from_env(stack.reserve_env(), "ecs")
    assert (stack.cloud, settings.min_idle, settings.buffer, settings.max_idle) == ("aws", 3, 0.0, 400)
    assert settings.max_idle_seconds == 900.0  # the project default where the stack sets nothing
    assert stack.max_sessions == 2500  # the 60/min day's peak + 25 %: the p95 goal at 60/min needs it
    assert "RESERVE_SCHEDULE" not in stack.reserve_env()  # "" leaves the dispatcher's default


def test_an_unknown_stack_is_named_with_the_ones_there_are() -> None:
    with pytest.raises(StackError, match="aws-prod"):
        load_stack("no-such-stack")


def test_the_command_prints_a_row_per_provider_and_level(capsys: pytest.CaptureFixture[str]) -> None:
    reserve_sim.main(["--stack", "gcp-prod", "--providers", "gce", "fly", "--levels", "2", "--hours", "0.5",
                      "--history-days", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| gce") or
            line.startswith("| fly")]
    assert [row.split("|")[1].strip() for row in rows] == ["gce", "fly"]


def test_a_bad_setting_stops_the_command_with_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        reserve_sim.main(["--stack", "aws-prod", "--env", "RESERVE_SERVICE_LEVEL=2"])
    assert "RESERVE_SERVICE_LEVEL" in capsys.readouterr().err
