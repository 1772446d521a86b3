"""Hostile review of the AWS stack's `ecsCells` (stacks/config/ecs_cells.py, stacks/aws/cell_task_definitions.py,
stacks/aws/dispatcher.py, stacks/tools/drain.py): each finding a test (first a strict xfail), now fixed.

Checked and found right (no test): the dispatcher's task role may `sts:AssumeRole` exactly the cells' role ARNs
(a path kept, no wildcard: a `*` a path could hold matches one role only, since a role's name is unique in its
account); the dispatcher sends the cell's ExternalId (dispatcher/machines/ecs/assume_role.py) and the printed trust
policy names the dispatcher's task role, never an account root; the printed permission policy is the stack's own
`grant_run` (RunTask on the families with `ecs:cluster`, TagResource only with `ecs:CreateAction`, PassRole with
`iam:PassedToService`); a bot's role is matched with its account, so a cell's role never admits another account's
task; the ceiling's 100-task bucket refilled at 20/s and the RunTask 20/s are per account and region (AWS Fargate
throttling quotas page), so they add up over accounts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.drain import Drain
from stacks.tools.mocks import Deployed, unwrap
from tests.infra.aws.test_ecs_cells import BOT_B, CELLS, cell_notes, cells_run, notes
from tests.infra.aws.test_releases import BOT, up
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS
from tests.infra.helpers import component_outputs
from tests.infra.test_turn_server import dispatcher_env

OWN = "123456789012"  # the stack's own account under the mocks
OWN_CELL = {"name": "own", "role_arn": f"arn:aws:iam::{OWN}:role/voicefleet-cell"}
MAPPED_CELLS: list[dict[str, Any]] = [
    {**cell, "cluster": f"voicefleet-{cell['name']}", "security_groups": [f"sg-0{cell['name']}"],
     "subnets": [f"subnet-0{cell['name']}"], "task_definitions": {BOT.format(1): "voicefleet-aws-test-bot:3"}}
    for cell in CELLS]


# 1. MEDIUM. A cell in the stack's own account (the usual way to keep that account's own launch bucket beside the
# others', since ECS_CELLS replaces it) is refused at preview with the bot channel unless ecsCellBotTaskRoleArns
# names a role of the stack's own account, though the stack's own bots' task roles already admit its bots
# (stacks/config/ecs_cells.py `bot_roles`: `bare` counts only the key's roles). The refusal's example ARN
# (role/voicefleet-bot-task) is no role the stack makes (its is autonamed), so the way out is a made-up ARN.
def test_a_cell_in_the_stacks_own_account_is_admitted_by_the_stacks_own_bot_roles(stack: Any) -> None:
    run = stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["aws"],
                ecsCells=json.dumps([OWN_CELL, CELLS[1]]), ecsCellBotTaskRoleArns=json.dumps([BOT_B]))
    roles = str(dispatcher_env(run, "aws")["ECS_BOT_TASK_ROLE_ARNS"]).split(",")
    assert BOT_B in roles and any(f":{OWN}:role/" in role for role in roles)


# 2. MEDIUM (destroy). The stack output machinesEnvironment, which `python -m stacks.drain` reads before a destroy,
# lists GCE_CELLS and CLOUDRUN_CELLS but not ECS_CELLS (stacks/shared/contract.py MACHINES_ENV), and the drain
# sweeps ECS in the stack's own cluster only (stacks/tools/drain.py: no ECS cell_machines): sessions' and idle
# reserve bots in the cells' accounts are never stopped, and the drain reports the stack drained.
def test_the_machines_environment_carries_ecs_cells_for_the_drain(stack: Any) -> None:
    outputs = component_outputs(cells_run(stack, MAPPED_CELLS), "aws")
    assert "ECS_CELLS" in unwrap(outputs["machinesEnvironment"])


def test_the_drain_sweeps_every_ecs_cells_account(stack: Any) -> None:
    outputs = component_outputs(cells_run(stack, MAPPED_CELLS), "aws")
    env = {**unwrap(outputs["machinesEnvironment"]), "ECS_CELLS": json.dumps(MAPPED_CELLS)}
    drain = Drain(outputs, env, grace=0, deadline=1, poll=0)
    assert len(drain.cell_machines) == len(MAPPED_CELLS)


# 3. MEDIUM. Every RunTask the dispatcher sends carries a capacityProviderStrategy (ECS_CAPACITY_PROVIDERS, FARGATE
# by default: dispatcher/machines/ecs/provider.py `_placement`), and ECS takes only capacity providers associated
# with the cluster (API_CapacityProviderStrategyItem: "only need to be associated with a cluster to be used"). The
# stack associates FARGATE and FARGATE_SPOT with its own cluster (stacks/aws/cluster.py) but neither the notes nor
# "Setting up ECS cells" say a cell's cluster needs them: a cluster made with `aws ecs create-cluster` alone fails
# every launch in that cell.
def test_the_notes_and_docs_say_a_cells_cluster_needs_the_fargate_capacity_providers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warned = notes(monkeypatch)
    up(Deployed(), ecsCells=json.dumps(CELLS), ecsCapacityProviders="FARGATE_SPOT:1,FARGATE:1")
    assert cell_notes(warned)
    assert all("put-cluster-capacity-providers" in note and "FARGATE_SPOT" in note for note in cell_notes(warned))
    operations = Path("docs/operations.md").read_text()
    section = operations.split("**Setting up ECS cells.**", 1)[1].split("**Releases in cells.**", 1)[0]
    assert "capacity provider" in section


# 4. MEDIUM. The copy the note registers names CELL_BOT_TASK_ROLE_ARN and CELL_BOT_EXECUTION_ROLE_ARN, but the note
# says only that the task role trusts ecs-tasks: nothing of the execution role's needs (pull from the cell's
# registry, write its log group, read its secrets: ResourceInitializationError at every launch without them), nor
# of the bot task role's own permissions, which the stack grants its own bots from botPermissions (stacks/aws/
# bot_runtime.py `-task-permissions`): a cell's bot runs, then fails its first S3 write or Bedrock call.
def test_the_note_says_what_the_cells_execution_role_and_bot_role_must_be_granted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warned = notes(monkeypatch)
    permissions = [{"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::team-recordings/*"]}]
    up(Deployed(), ecsCells=json.dumps(CELLS), botPermissions=json.dumps(permissions))
    (note,) = cell_notes(warned)
    for needed in ("secretsmanager:GetSecretValue", "logs:PutLogEvents", "ecr:BatchGetImage", "s3:PutObject"):
        assert needed in note, needed


# 5. LOW-MEDIUM. A cell may name its own `task_definition` (ECS_CELLS' field for a family of that account's), which
# the dispatcher runs there for every start without a release; the printed permission policy grants RunTask on the
# stack's families only (cell_task_definitions.py `permission_policy`), so those starts are AccessDenied.
def test_the_printed_permission_policy_covers_the_cells_own_task_definition_family(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warned = notes(monkeypatch)
    own_family = [CELLS[0], {**CELLS[1], "task_definition": "voicefleet-b-bot"}]
    up(Deployed(), ecsCells=json.dumps(own_family))
    (note,) = cell_notes(warned)
    assert "arn:aws:ecs:eu-west-1:222222222222:task-definition/voicefleet-b-bot:*" in note


# 6. LOW. The preview takes a cell the stack's dispatcher can never reach or run in: a role of another partition
# (the parser takes any arn:aws*-…, the stack checks none against aws:region's), or a `cluster` ARN of another
# account or region than the cell's, which permission_policy silently rewrites to the cell's account (its name
# only), so the printed policy and what the dispatcher sends differ and every launch there fails.
@pytest.mark.parametrize("cell", [
    {"name": "cn", "role_arn": "arn:aws-cn:iam::111111111111:role/voicefleet-cell"},
    {"name": "made-up", "role_arn": "arn:aws-nowhere:iam::111111111111:role/voicefleet-cell"},
    {"name": "b", "role_arn": "arn:aws:iam::222222222222:role/voicefleet-cell",
     "cluster": "arn:aws:ecs:us-east-1:333333333333:cluster/voicefleet-b"},
])
def test_a_cell_of_another_partition_or_a_foreign_cluster_is_refused_at_preview(
        stack: Any, cell: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match="ecsCells"):
        cells_run(stack, [cell])


# 7. MEDIUM. With ecsCells and dispatcherCount=1 the stack makes the store (stacks/config/settings.py `_aws`:
# `require_for_replicas(...) or bool(account_cells)`), but require_for_replicas runs first and refuses the store's
# rotation keys ("storePreviousPassword is set but dispatcherCount=1 has no coordination store: pulumi config rm"),
# so a one-replica stack with cells cannot rotate its own store password or message secret without locking out the
# running dispatcher: following the advice drops the password the running task still signs in with.
def test_a_one_replica_stack_with_cells_can_rotate_its_store_password(stack: Any) -> None:
    new, old = "SENTINEL-new-store-password-0123456789", "SENTINEL-old-store-password-0123456789"
    run = stack("aws", ecsCells=json.dumps(CELLS), dispatcherCount="1",
                secrets={**SECRETS, "voicefleet:storePassword": new, "voicefleet:storePreviousPassword": old})
    (user,) = [u for u in run.of_type("aws:elasticache/user:User") if unwrap(u.inputs)["userName"] == "voicefleet"]
    assert unwrap(user.inputs["authenticationMode"])["passwords"] == [new, old]
