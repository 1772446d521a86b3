"""The made secrets' rotation is taken one step at a time (stacks/config/rotation_last_up.py): each `up`
exports its step, the next reads it back, and a step skipped or repeated is refused before any made
secret is drawn, naming the next step."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime import mocks as pulumi_mocks

from stacks.config.reader import SettingsError
from stacks.config.rotation_last_up import LastRotation, Step
from stacks.tools.mocks import Deployed, RecordingMocks, Run, run_program
from tests.infra.conftest import CHANNEL, K8S_STACK_SECRETS, SECRETS, config_for
from tests.infra.helpers import watched_monitors

PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a resource type
AWS_REPLICAS = {**CHANNEL["aws"], "dispatcherCount": "2", "botChannel": "true"}
# The store's message secret and password are the stack's own: a rotation rolls them.
USERS_OWN = {k: v for k, v in SECRETS.items() if k != "voicefleet:storeMessageSecret"}


def up(deployed: Deployed, cloud: str = "aws", base: dict[str, str] = AWS_REPLICAS, **overrides: str) -> Run:
    run = run_program(config_for(cloud, {**base, **overrides}, USERS_OWN), list(USERS_OWN), stack=f"{cloud}-test",
                      deployed=deployed)
    deployed.record(run)
    return run


def test_the_three_ups_of_a_rotation_each_read_the_step_before() -> None:
    deployed = Deployed()
    up(deployed)
    assert deployed.outputs["secretsRotation"] == {"generation": 0, "roll": "none", "rolls": True}
    for step in ({"secretsRoll": "next"}, {"secretsRotation": "1", "secretsRoll": "previous"},
                 {"secretsRotation": "1"}, {"secretsRotation": "1"}):  # the last: an `up` that changes nothing
        up(deployed, **step)
    assert deployed.outputs["secretsRotation"] == {"generation": 1, "roll": "none", "rolls": True}


@pytest.mark.parametrize(("before", "now", "next_step"), [
    # Raised without `next` first: the replicas of the last deploy cannot open what the new ones seal.
    ({}, {"secretsRotation": "1"}, "secretsRoll next`"),
    # Raised by two: generation 1's secrets, which the last deploy accepts, are skipped.
    ({"secretsRoll": "next"}, {"secretsRotation": "2", "secretsRoll": "previous"},
     "is secretsRotation 1 with secretsRoll previous (`pulumi config set secretsRotation 1`)"),
    # Step 2 repeated: generation 1's password, which the last deploy signs in with, would go.
    ({"secretsRoll": "next"}, {"secretsRoll": "previous", "secretsRotation": "1"}, None),
])  # fmt: skip
def test_a_step_skipped_or_repeated_is_refused_naming_the_next_and_draws_nothing(
        monkeypatch: pytest.MonkeyPatch, before: dict[str, str], now: dict[str, str], next_step: str | None) -> None:
    deployed = Deployed()
    up(deployed, **before)
    if next_step is None:  # the repeat: first the step itself, then it once more with the generation raised again
        up(deployed, **now)
        now, next_step = {"secretsRotation": "2", "secretsRoll": "previous"}, "pulumi config rm secretsRoll`"
    monitors = watched_monitors(monkeypatch)
    with pytest.raises(SettingsError, match="skips or repeats a step of the rotation") as refused:
        up(deployed, **now)
    assert next_step in str(refused.value)
    (monitor,) = monitors
    # No made secret is drawn, and the cloud's provider waits for the check: nothing in the cloud changes.
    assert [r.name for r in monitor.registrations if r.type == PASSWORD or r.type.startswith(("aws:", "docker"))
            or r.type == "pulumi:providers:aws"] == []


def test_a_stack_without_made_store_secrets_rotates_in_one_up() -> None:
    """No store (one replica): the channel token and the TURN secret are replaced at once, whatever the step."""
    deployed = Deployed()
    gcp = {"botChannel": "true", **CHANNEL["gcp"]}
    up(deployed, "gcp", gcp)
    assert deployed.outputs["secretsRotation"]["rolls"] is False
    up(deployed, "gcp", gcp, secretsRotation="2")


@pytest.mark.parametrize(("last", "now", "allowed"), [
    (Step(3, "none"), Step(3, "next"), True),
    (Step(3, "next"), Step(4, "previous"), True),
    (Step(4, "previous"), Step(4, "none"), True),
    (Step(3, "next"), Step(3, "none"), True),  # called off: nothing sealed with generation 4 yet
    (Step(3, "none"), Step(4, "none"), False),
    (Step(3, "none"), Step(4, "previous"), False),
    (Step(3, "next"), Step(4, "next"), False),
    (Step(4, "previous"), Step(3, "next"), False),  # generation 4's password, which runs, would go
    (Step(4, "previous"), Step(5, "previous"), False),
])  # fmt: skip
def test_which_steps_may_follow(last: Step, now: Step, allowed: bool) -> None:
    assert LastRotation(last, rolls=True).allows(now) is allowed
    assert LastRotation(last, rolls=False).allows(now) is True


def test_a_step_read_back_takes_the_doubles_a_stack_reference_gives() -> None:
    assert LastRotation.of({"generation": 2.0, "roll": "next", "rolls": True}) == LastRotation(Step(2, "next"), True)
    assert LastRotation.of(None) is None
    assert LastRotation.of({"generation": 2.5, "roll": "next", "rolls": True}) is None


K8S_USERS_OWN = {k: v for k, v in K8S_STACK_SECRETS.items() if k != "voicefleet:storeMessageSecret"}

def k8s_up(deployed: Deployed, **overrides: str) -> Run:
    run = run_program(config_for("k8s", overrides, K8S_USERS_OWN), list(K8S_USERS_OWN), stack="k8s-test",
                      deployed=deployed)
    deployed.record(run)
    return run


def test_an_up_whose_dispatcher_rollout_fails_leaves_the_step_before_for_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed `up` keeps the stack outputs it did not replace and takes the ones the program registered
    (pulumi/pulumi pkg/resource/deploy/step_executor.go, executeRegisterResourceOutputs, errored): a step
    exported while the dispatcher's rollout still runs, then fails, would let the next `up` take the step
    after it, with the last deploy's replicas still on the step before."""
    deployed = Deployed()
    k8s_up(deployed)
    k8s_up(deployed, secretsRoll="next")
    monitors = watched_monitors(monkeypatch)
    real = RecordingMocks.new_resource

    def rollout_fails(self: RecordingMocks, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "kubernetes:apps/v1:Deployment" and "dispatcher" in args.name:
            raise RuntimeError("1 out of 2 replicas failed to become ready (the rollout's wait ran out)")
        return real(self, args)

    monkeypatch.setattr(RecordingMocks, "new_resource", rollout_fails)
    with pytest.raises(Exception, match="failed to become ready"):
        k8s_up(deployed, secretsRotation="1", secretsRoll="previous")
    (monitor,) = monitors
    exported = [outputs.get("secretsRotation") for outputs in monitor.completed.values() if "cloud" in outputs]
    assert {"generation": 1, "roll": "previous", "rolls": True} not in exported, exported
