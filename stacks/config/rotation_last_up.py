"""Where the last `up` left the made secrets' rotation, read back, and the steps refused against it.

A rotation of a stack whose store's secrets the stack makes is three `up`s (stacks/config/made_secrets.py):
`secretsRoll: next`, then `secretsRotation: n + 1` with `secretsRoll: previous`, then `secretsRoll` unset.
Each `up` keeps what the one before it sealed with and signed in with; an `up` that skips a step, or
repeats one, drops the previous generation's message secret and store password at once, while replicas
of the last deploy still use them. The program sees only this `up`'s configuration, so each `up` exports
where it stands (`secretsRotation`: its generation, roll, and whether it made a store's secrets) and the
next one reads it back through a StackReference to the stack itself, as stacks/shared/releases.py reads
its releases; a change that is not the next step (or staying put, or calling off a `next`) is refused,
naming the next step. Every made secret and every cloud provider waits for the check, so a refused `up` draws
none of them and changes nothing in the cloud.

A stack whose last `up` made no store secrets (no store, or set ones) rotates in one `up`, and a stack
whose last `up` did not say (its first, or one by an earlier release) takes any value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from stacks.config.reader import SettingsError
from stacks.config.refused import reported_once

OUTPUT = "secretsRotation"  # {"generation", "roll", "rolls"}: what the next `up` reads back
ROTATION_KEY, ROLL_KEY = "secretsRotation", "secretsRoll"
DOCS = 'docs/pulumi.md, "Rotating the secrets the stack makes"'


@dataclass(frozen=True)
class Step:
    """One `up`'s place in a rotation: the made secrets' generation and which neighbour a roll keeps."""

    generation: int
    roll: str  # none | next | previous

    def __str__(self) -> str:
        return f"{ROTATION_KEY} {self.generation} with {ROLL_KEY} {self.roll}"

    def command(self, now: Step) -> str:
        """The `pulumi config` commands that take `now`'s configuration to this step."""
        said = [] if self.generation == now.generation else [f"pulumi config set {ROTATION_KEY} {self.generation}"]
        if self.roll != now.roll:
            said.append(f"pulumi config rm {ROLL_KEY}" if self.roll == "none"
                        else f"pulumi config set {ROLL_KEY} {self.roll}")
        return " && ".join(said)


@dataclass(frozen=True)
class LastRotation:
    """The last `up`'s step, and whether it made a store's message secret or password (a roll keeps them)."""

    step: Step
    rolls: bool

    @property
    def next(self) -> Step:
        """The one step of a rotation that may follow."""
        g, roll = self.step.generation, self.step.roll
        return {"none": Step(g, "next"), "next": Step(g + 1, "previous")}.get(roll, Step(g, "none"))

    def allows(self, now: Step) -> bool:
        # Calling off a `next` is safe: nothing sealed with the next generation yet.
        called_off = self.step.roll == "next" and now == Step(self.step.generation, "none")
        return not self.rolls or now in (self.step, self.next) or called_off

    @classmethod
    def of(cls, value: object) -> LastRotation | None:
        if not isinstance(value, Mapping):
            return None
        generation, roll, rolls = value.get("generation"), value.get("roll"), value.get("rolls")
        # A StackReference's numbers are doubles, as protobuf's Struct has them.
        if isinstance(generation, bool) or not isinstance(generation, int | float) or generation != int(generation):
            return None
        if roll not in ("none", "next", "previous") or not isinstance(rolls, bool):
            return None
        return cls(Step(int(generation), str(roll)), rolls)


def output(step: Step, rolls: bool) -> dict[str, Any]:
    """What the next `up` reads back."""
    return {"generation": step.generation, "roll": step.roll, "rolls": rolls}


def exported(step: Mapping[str, object], applied: pulumi.Input[object]) -> pulumi.Output[dict[str, object]]:
    """`step` (output()), once `applied` is: the dispatcher's workload that takes this step's secrets. A failed
    `up` keeps the stack outputs the program did not register and takes those it did (pulumi/pulumi
    pkg/resource/deploy/step_executor.go, executeRegisterResourceOutputs), and the Python SDK registers them
    all or none: so a rollout that fails leaves the step before for the next `up` to check against."""
    return pulumi.Output.from_input(applied).apply(lambda _: dict(step))


def refuse_jump(last: LastRotation | None, now: Step) -> None:
    if last is None or last.allows(now):
        return
    nxt = last.next
    raise SettingsError(
        f"Invalid stack configuration: {now}, but this stack's last `up` was at {last.step}: that skips or repeats "
        f"a step of the rotation, and would drop the secrets the replicas of the last deploy still seal with and "
        f"sign in with. The next step is {nxt} (`{nxt.command(now)}`); to stay where the stack is: "
        f"`{last.step.command(now) or 'no change'}` ({DOCS})")


def checked(now: Step) -> pulumi.Output[Step]:
    """`now`, once the last `up`'s step allows it (a refusal fails the program: every made secret waits on it)."""
    own = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"  # as releases.own_stack
    reference = pulumi.StackReference("secrets-rotation-last-up", stack_name=own)

    def check(value: object) -> Step:
        try:
            refuse_jump(LastRotation.of(value), now)
        except SettingsError as refused:
            reported_once(refused)
            raise
        return now

    return reference.get_output(OUTPUT).apply(check)

