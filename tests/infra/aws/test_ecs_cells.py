"""An AWS stack with `ecsCells` (stacks/config/ecs_cells.py), under Pulumi mocks: the list read as the dispatcher
reads ECS_CELLS and refused as it would be, naming the key; passed on as the JSON it reads; the store it needs made;
the dispatcher's task role let assume exactly the cells' roles (nothing without cells); and the cells' bots' task
roles admitted with the channel, a cell without one refused at preview."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.machines.ecs.cell_settings import ecs_cells
from dispatcher.machines.ecs.settings import EcsSettings
from stacks.config.ceiling_notes import SERVICE_QUOTA_READ
from stacks.config.settings import SettingsError
from stacks.tools.mocks import Deployed, Run
from tests.infra.aws.test_releases import BOT, up
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import policy_statements
from tests.infra.test_turn_server import dispatcher_env

ROLE_A = "arn:aws:iam::111111111111:role/voicefleet-cell"
ROLE_B = "arn:aws:iam::222222222222:role/teams/voicefleet-cell"
BOT_A = "arn:aws:iam::111111111111:role/voicefleet-cell-bot"
BOT_B = "arn:aws:iam::222222222222:role/voicefleet-cell-bot"
MAPPED = "arn:aws:ecs:eu-west-1:123456789012:task-definition/voicefleet-aws-test-bot:7"
CELLS: list[dict[str, Any]] = [
    {"name": "a", "role_arn": ROLE_A, "external_id": "vf-prod-7c1e"},
    {"name": "b", "role_arn": ROLE_B, "cluster": "voicefleet-b", "subnets": ["subnet-0b"], "max_tasks": 400,
     "task_definitions": {MAPPED: "voicefleet-aws-test-bot:3"}},
]


def cells_run(stack: StackRunner, cells: list[dict[str, Any]] = CELLS, **more: str) -> Run:
    return stack("aws", ecsCells=json.dumps(cells), **more)


def assume_statements(run: Run) -> list[dict[str, Any]]:
    """The grants (trust statements name a principal, not a resource) of sts:AssumeRole."""
    return [s for s in policy_statements(run) if "Principal" not in s and "sts:AssumeRole" in s["Action"]]


def test_the_dispatcher_reads_ecs_cells_exactly_as_listed(stack: StackRunner) -> None:
    env = dispatcher_env(cells_run(stack), "aws")
    written = env["ECS_CELLS"]
    assert written is not None
    assert ecs_cells(written) == ecs_cells(json.dumps(CELLS))  # the dispatcher's own parser reads the same cells
    assert json.loads(written) == CELLS  # only the fields set, the release map a mapping as ECS_CELLS takes it


def test_without_cells_the_dispatcher_has_no_ecs_cells_and_no_store(aws: Run) -> None:
    assert "ECS_CELLS" not in dispatcher_env(aws, "aws")
    assert not aws.of_type("aws:elasticache/serverlessCache:ServerlessCache")


def test_cells_make_the_store_the_dispatcher_needs_for_them_with_one_replica(stack: StackRunner) -> None:
    run = cells_run(stack, dispatcherCount="1")
    env = dispatcher_env(run, "aws")
    assert env.get("REDIS_URL"), "ECS_CELLS needs the shared store: the dispatcher refuses to start without it"
    assert run.of_type("aws:elasticache/serverlessCache:ServerlessCache")


@pytest.mark.parametrize(("cells", "problem"), [
    ([{"name": "a", "role_arn": ROLE_A}, {"name": "b", "role_arn": "arn:aws:iam::111111111111:role/other"}],
     "an account"),  # one account's RunTask rate listed twice
    ([{"name": "a", "role_arn": "arn:aws:iam::1111:role/x"}], "role_arn must be an IAM role ARN"),
    ([{"name": "a", "role_arn": ROLE_A, "region": "eu-west-1"}], "region"),  # a field ECS_CELLS has not
])
def test_a_list_the_dispatcher_would_refuse_fails_the_preview_naming_the_key(
        stack: StackRunner, cells: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        cells_run(stack, cells)
    message = str(caught.value)
    assert "voicefleet:ecsCells is not a list of cells the dispatcher takes" in message and problem in message


def test_the_dispatchers_task_role_may_assume_exactly_the_cells_roles(stack: StackRunner) -> None:
    (allowed,) = assume_statements(cells_run(stack))
    assert allowed == {"Sid": "AssumeCellRoles", "Effect": "Allow", "Action": ["sts:AssumeRole"],
                       "Resource": [ROLE_A, ROLE_B]}  # no wildcard; the external id is the cell's trust policy's


def test_without_cells_no_role_may_assume_anything(aws: Run) -> None:
    assert assume_statements(aws) == []


def with_channel(stack: StackRunner, **more: str) -> Run:
    return cells_run(stack, secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["aws"], **more)


def test_with_the_channel_the_cells_bots_task_roles_are_admitted_beside_the_stacks_own(stack: StackRunner) -> None:
    env = dispatcher_env(with_channel(stack, ecsCellBotTaskRoleArns=json.dumps([BOT_A, BOT_B])), "aws")
    roles = str(env["ECS_BOT_TASK_ROLE_ARNS"]).split(",")
    assert roles[-2:] == [BOT_A, BOT_B]
    assert [r for r in roles[:-2] if ":123456789012:role/" in r]  # the stack's own bots' task role still first


def test_with_the_channel_a_cell_whose_bots_would_all_be_refused_fails_the_preview(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as caught:
        with_channel(stack, ecsCellBotTaskRoleArns=json.dumps([BOT_A]))
    message = str(caught.value)
    assert "voicefleet:ecsCellBotTaskRoleArns names no bots' task role of the account of cell(s) b (222222222222)" in (
        message)
    assert "pulumi config set --path 'ecsCellBotTaskRoleArns[1]' arn:aws:iam::222222222222:role/" in message


def test_a_bot_role_of_an_account_no_cell_is_is_refused(stack: StackRunner) -> None:
    stray = "arn:aws:iam::333333333333:role/voicefleet-cell-bot"
    with pytest.raises(SettingsError, match="names arn:aws:iam::333333333333:role/voicefleet-cell-bot, of an account "
                                            "no ecsCells cell is"):
        with_channel(stack, ecsCellBotTaskRoleArns=json.dumps([BOT_A, BOT_B, stray]))


def test_bot_roles_without_the_channel_are_refused_as_checked_by_nothing(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="ecsCellBotTaskRoleArns is set but the stack has no bot channel"):
        cells_run(stack, ecsCellBotTaskRoleArns=json.dumps([BOT_A, BOT_B]))


def notes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    return warned


def cell_notes(warned: list[str]) -> list[str]:
    return [w for w in warned if w.startswith("ecsCells: release task definition")]


def test_each_release_a_cell_of_another_account_does_not_map_is_noted_once_with_what_it_must_hold(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warned, deployed = notes(monkeypatch), Deployed()
    up(deployed, ecsCells=json.dumps(CELLS))
    deployed.bot_build = 2  # a new build: a second release beside the first
    up(deployed, ecsCells=json.dumps(CELLS))
    first, second = cell_notes(warned)[-2:]
    assert first.startswith(f"ecsCells: release task definition {BOT.format(1)} is registered in account "
                            "123456789012 only")
    assert second.startswith(f"ecsCells: release task definition {BOT.format(2)} ")
    assert "Not mapped in [a: 111111111111, b: 222222222222]" in second
    # the copy keeps the stack's family (ECS_TASK_DEFINITION names it) with the cell's roles in place
    assert (f"aws ecs describe-task-definition --region eu-west-1 --task-definition {BOT.format(2)} --query "
            "taskDefinition --output json | jq --arg family voicefleet-aws-test-bot --arg task CELL_BOT_TASK_ROLE_ARN"
            in second)
    assert f"'ecsCells[0].task_definitions[\"{BOT.format(2)}\"]' voicefleet-aws-test-bot:<its revision there>" in second
    # each cell's role: trusted by the dispatcher's task role alone, with the cell's external id where it names one
    dispatcher_role = "arn:aws:iam::123456789012:role/voicefleet-aws-test-dispatcher-task"
    assert ('a: trust {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":'
            f'{{"AWS":"{dispatcher_role}' in second)
    assert '"Condition":{"StringEquals":{"sts:ExternalId":"vf-prod-7c1e"}}' in second
    cluster_b = "arn:aws:ecs:eu-west-1:222222222222:cluster/voicefleet-b"
    assert ('"Resource":["arn:aws:ecs:eu-west-1:222222222222:task-definition/voicefleet-aws-test-bot:*"],'
            f'"Condition":{{"ArnEquals":{{"ecs:cluster":"{cluster_b}"}}}}') in second
    assert "ClaimReserveBot" not in second  # no channel, no warm reserve: no re-tag


def test_a_release_every_cell_maps_is_not_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    warned, deployed = notes(monkeypatch), Deployed()
    mapped = [{**cell, "task_definitions": {BOT.format(1): "voicefleet-aws-test-bot:3"}} for cell in CELLS]
    up(deployed, ecsCells=json.dumps(mapped))
    assert cell_notes(warned) == []
    # a cell in the stack's own account runs its task definitions as they are: nothing to map
    own = [{"name": "own", "role_arn": "arn:aws:iam::123456789012:role/voicefleet-cell"}]
    up(deployed, ecsCells=json.dumps(own))
    assert cell_notes(warned) == []


def test_a_cell_of_another_account_left_with_the_stacks_cluster_and_network_is_warned(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warned = notes(monkeypatch)
    up(Deployed(), ecsCells=json.dumps(CELLS))
    network = [w for w in warned if w.startswith("ecsCells: cell ")]
    assert network == [
        "ecsCells: cell a (account 111111111111) names no cluster, subnets, security_groups, so the dispatcher sends "
        "RunTask there the stack's own (account 123456789012's), which that account cannot use: every launch in the "
        "cell fails. Set the cell's cluster, subnets, security_groups to that account's own (docs/operations.md, "
        "Setting up ECS cells)",
        "ecsCells: cell b (account 222222222222) names no security_groups, so the dispatcher sends RunTask there the "
        "stack's own (account 123456789012's), which that account cannot use: every launch in the cell fails. Set "
        "the cell's security_groups to that account's own (docs/operations.md, Setting up ECS cells)"]


def test_with_cells_the_ceiling_counts_each_account_and_reads_no_quota_of_the_stacks_own(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    logged: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: logged.append(str(message)))
    run = cells_run(stack, accountQuotas="true")
    assert [i for i in run.invokes if i.token == SERVICE_QUOTA_READ] == []  # the cells' quotas it cannot read
    assert [m for m in logged if "concurrency ceiling (Fargate, eu-west-1, 2 accounts (ecsCells: a (111111111111); "
                                 "b (222222222222)))" in m]
    alone = stack("aws", accountQuotas="true")
    assert [i for i in alone.invokes if i.token == SERVICE_QUOTA_READ]  # one account: its quota read as before


def test_with_cells_the_dispatchers_task_definition_is_the_oldest_kept_releases_so_a_new_build_needs_one_up(
        aws: Run) -> None:
    deployed = Deployed()
    mapped = [{**cell, "task_definitions": {BOT.format(1): "voicefleet-aws-test-bot:3"}} for cell in CELLS]
    env = dispatcher_env(up(deployed, ecsCells=json.dumps(mapped)), "aws")
    assert env["ECS_TASK_DEFINITION"] == BOT.format(1)
    deployed.bot_build = 2  # a new build, which no cell maps yet: the default stays the one they all map
    env = dispatcher_env(up(deployed, ecsCells=json.dumps(mapped)), "aws")
    assert env["ECS_TASK_DEFINITION"] == BOT.format(1) and BOT.format(2) in str(env["RELEASES"])
    # ... and the dispatcher starts with it: the new release is passed over by the cells until they map it.
    settings = EcsSettings.from_env({**{k: str(v) for k, v in env.items() if v is not None}, "AWS_REGION": "eu-west-1"})
    assert [settings.for_cell(cell).task_definition for cell in settings.cells] == ["voicefleet-aws-test-bot:3"] * 2
    # Without cells, the stack's own account runs the family's newest revision, as before.
    assert dispatcher_env(aws, "aws")["ECS_TASK_DEFINITION"] == "voicefleet-aws-test-bot"
