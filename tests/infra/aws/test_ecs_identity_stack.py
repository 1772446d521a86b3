"""The AWS stack with the bot channel starts a dispatcher that can check its bots' task identities.

With a channel the dispatcher refuses to start on ECS until it knows the bots' task roles
(`ECS_BOT_TASK_ROLE_ARNS`, dispatcher/factory.py): the stack must give them, every bot runtime's
(the Daily bot's and, when set, the WebRTC bot's), or the first `pulumi up` leaves a dispatcher
service that never reaches a steady state."""

from __future__ import annotations

import re

from dispatcher.factory import configuration_problems
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container


def _dispatcher_env(run: Run) -> dict[str, str]:
    """The dispatcher task's environment as ECS would start it: its values, and its secrets
    (fetched by the agent) stood for by placeholders of a valid shape, each its own (the dispatcher
    refuses an admin key that is also a client key)."""
    dispatcher = container(run, "-dispatcher")
    env = {e["name"]: str(unwrap(e["value"])) for e in dispatcher["environment"]}
    for secret in dispatcher["secrets"]:
        env[secret["name"]] = f"{secret['name'].lower()}-" + "k" * 40
    return env


def _bot_task_roles(run: Run) -> list[str]:
    return sorted(r.outputs["arn"] for r in run.of_type("aws:iam/role:Role")
                  if re.search(r"-bot(-webrtc)?-task$", r.name))


def test_the_channel_stacks_dispatcher_passes_its_own_start_checks_and_names_every_bot_task_role(
    stack: StackRunner,
) -> None:
    run = stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["aws"])
    env = _dispatcher_env(run)
    assert env["MACHINES"] == "ecs" and env.get("BOT_CHANNEL_URL", "").startswith("wss://")
    assert configuration_problems(env) == [], "the dispatcher would exit at start: the service never steadies"
    named = sorted(a.strip() for a in env["ECS_BOT_TASK_ROLE_ARNS"].split(","))
    assert named == _bot_task_roles(run)
