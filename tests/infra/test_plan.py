"""The offline plan of every example stack matches its committed snapshot.

A change to the program or to stacks/Pulumi.<stack>.yaml shows up here as a text diff. When the
change is intended, refresh the snapshots and commit them with it:

    uv run python -m stacks.plan aws-dev aws-prod gcp-dev gcp-prod --write
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.plan import SNAPSHOTS, plan, stack_config

STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")]
                for p in (Path(__file__).resolve().parents[2] / "stacks").glob("Pulumi.*.yaml"))


def test_every_example_stack_has_a_snapshot() -> None:
    assert STACKS == ["aws-dev", "aws-prod", "gcp-dev", "gcp-prod"]
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.txt")) == STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_plan_matches_snapshot(stack: str) -> None:
    expected = (SNAPSHOTS / f"{stack}.txt").read_text()
    actual = plan(stack)
    assert actual == expected, (
        f"plan of {stack} changed; review the diff, then refresh with "
        f"`uv run python -m stacks.plan {stack} --write`")


def test_plan_shows_secrets_only_as_placeholders() -> None:
    text = plan("aws-dev")
    assert "[secret]" in text and "placeholder-dailyApiKey" not in text


def test_secret_keys_missing_from_a_stack_file_get_secret_placeholders() -> None:
    config, secret_keys = stack_config("gcp-prod")
    assert {"voicefleet:dailyApiKey", "voicefleet:dispatcherApiKeys"} <= set(secret_keys)
    assert config["voicefleet:cloud"] == "gcp" and config["voicefleet:protect"] == "true"
