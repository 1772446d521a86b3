"""What each ECS cell's account must hold for a release: the stack says it, and makes none of it.

With `ecsCells` the dispatcher runs a release's bot task in its cell's account, and ECS runs only
an account's own task definitions: a cell of another account maps each release's task definition
ARN (as RELEASES names it) to its own copy (the cell's `task_definitions`); a cell that lacks one
takes none of that release's sessions (passed over, not drained: dispatcher/machines/ecs/cells.py),
and a release no cell maps fails its starts `release_image_missing`. The stack registers each release
in its own account only: a copy names the cell's own roles, log group, secrets and image, which are
the operator's (docs/operations.md, "Setting up ECS cells"). So every `up` whose releases a cell does
not map warns, once per release, with what that cell's account must hold. The dispatcher's own task
definition (ECS_TASK_DEFINITION) is then the oldest kept release's (`oldest_release`), which the cells
have mapped since its `up`: a new build's `up` succeeds at once, and its release starts in the cells
as they map it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from dispatcher.machines.ecs.cell_settings import EcsCell
from dispatcher.machines.ecs.settings import task_family
from dispatcher.machines.releases import release_references
from dispatcher.releases.catalogue import Catalogue
from stacks.aws.bot_runtime import ECS_TASKS, PULL_IMAGE, REGISTRY_LOGIN, WRITE_LOGS


def own_account(arn: str) -> str:
    """The account an ARN of the stack's own (arn:<partition>:<service>:<region>:<account>:…) is in."""
    return arn.split(":")[4]


def unmapped(cells: Sequence[EcsCell], releases: str, account: str) -> dict[str, tuple[EcsCell, ...]]:
    """Each task definition RELEASES (`releases`) names that a cell of an account other than `account`
    (the stack's) does not map, with those cells: oldest release first."""
    found = {}
    for reference in release_references({"RELEASES": releases}):
        lacking = tuple(cell for cell in cells
                        if cell.account != account and reference not in dict(cell.task_definitions))
        if lacking:
            found[reference] = lacking
    return found


def oldest_release(releases: str, transport: str) -> str | None:
    """ECS_TASK_DEFINITION (`transport` daily) or ECS_TASK_DEFINITION_WEBRTC with ecsCells: the oldest kept
    release's task definition (RELEASES, `releases`), as gceCells' template: each cell has mapped it since that
    release's own `up`, so a new build's `up` asks no cell to map anything first. None: no release lists one."""
    listed = Catalogue.from_env({"RELEASES": releases}, local=False).releases
    return listed[0].image_for(transport) if listed else None


def trust_policy(dispatcher_role: str, external_id: str | None) -> str:
    """The cell role's trust policy: the dispatcher's task role alone, with the cell's external id if it names one
    (STS checks it; the dispatcher sends it with each AssumeRole)."""
    allow: dict[str, object] = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": dispatcher_role}}
    if external_id is not None:
        allow["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [allow]}, separators=(",", ":"))


def permission_policy(cell: EcsCell, region: str, families: Sequence[str], *, claim: bool) -> str:
    """The cell role's permissions, as the stack grants its own dispatcher (stacks/aws/bot_runtime.py `grant_run`),
    held to the cell's cluster (its `cluster`; CLUSTER where it names none) and the bots' task definition
    `families` (the stack's: ECS_TASK_DEFINITION names its family, which a cell without a `task_definition` runs
    there, and each the cell names of its own: its `task_definition`, `task_definition_webrtc` and mapped copies);
    the placeholders in capitals are the cell account's own. `claim`: the warm reserve re-tags tasks."""
    own = (cell.task_definition, cell.task_definition_webrtc, *dict(cell.task_definitions).values())
    families = list(dict.fromkeys((*families, *(task_family(named) for named in own if named))))
    partition = cell.role_arn.split(":")[1]
    name = (cell.cluster or "CLUSTER").rsplit("/", 1)[-1]  # a cell's `cluster` is a name or an ARN
    cluster = f"arn:{partition}:ecs:{region}:{cell.account}:cluster/{name}"
    tasks = f"arn:{partition}:ecs:{region}:{cell.account}:task/{name}/*"
    on_cluster = {"ArnEquals": {"ecs:cluster": cluster}}
    statements: list[dict[str, object]] = [
        {"Sid": "RunBot", "Effect": "Allow", "Action": ["ecs:RunTask"],
         "Resource": [f"arn:{partition}:ecs:{region}:{cell.account}:task-definition/{family}:*" for family in families],
         "Condition": on_cluster},
        {"Sid": "TagOnLaunch", "Effect": "Allow", "Action": ["ecs:TagResource"], "Resource": tasks,
         "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}}},
        {"Sid": "PassBotRoles", "Effect": "Allow", "Action": ["iam:PassRole"],
         "Resource": [f"arn:{partition}:iam::{cell.account}:role/CELL_BOT_TASK_ROLE",
                      f"arn:{partition}:iam::{cell.account}:role/CELL_BOT_EXECUTION_ROLE"],
         "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS}}},
        {"Sid": "ManageBots", "Effect": "Allow", "Action": ["ecs:DescribeTasks", "ecs:StopTask"], "Resource": tasks,
         "Condition": on_cluster},
        {"Sid": "ListBots", "Effect": "Allow", "Action": ["ecs:ListTasks"], "Resource": "*", "Condition": on_cluster},
    ]
    if claim:
        statements.append({"Sid": "ClaimReserveBot", "Effect": "Allow",
                           "Action": ["ecs:TagResource", "ecs:UntagResource"], "Resource": tasks,
                           "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": ["voicefleet:*"]}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def role_grants(account: str, bot_permissions: Sequence[Mapping[str, Any]]) -> str:
    """What the cell's bot roles must be granted, as the stack grants its own (stacks/aws/bot_runtime.py): the
    execution role pulls, logs and reads the secrets before the bot runs; the task role holds botPermissions."""
    execution = (f"the execution role there (CELL_BOT_EXECUTION_ROLE) may {', '.join(REGISTRY_LOGIN)} on *, "
                 f"{', '.join(PULL_IMAGE)} on the cell's repository, {', '.join(WRITE_LOGS)} on its log group "
                 "(arn:…:log-group:NAME:*) and secretsmanager:GetSecretValue on each secret cell-bot.json names "
                 "(kms:Decrypt on a customer-managed key of theirs), else every launch there stops with "
                 "ResourceInitializationError")
    if not bot_permissions:
        return f"{execution}; the bots' task role there needs no permission (botPermissions grants none)"
    document = json.dumps({"Version": "2012-10-17", "Statement": list(bot_permissions)}, separators=(",", ":"))
    return (f"{execution}; the bots' task role there (CELL_BOT_TASK_ROLE) holds what botPermissions grants the "
            f"stack's own: {document}, and a resource of account {account} it names also needs that resource's own "
            "grant to the cell's role (a bucket, key or secret policy naming it): a role's policy alone reaches "
            "no other account's resource")


def copy_command(task_definition: str, region: str) -> str:
    """Reads the release's task definition (with the stack's credentials) as the input a register in the cell's
    account takes: its own fields only (ECS refuses the read-only ones), with the cell's roles in place."""
    keep = ("{family: $family, taskRoleArn: $task, executionRoleArn: $execution, networkMode, containerDefinitions, "
            "requiresCompatibilities, cpu, memory, runtimePlatform}")
    return (f"aws ecs describe-task-definition --region {region} --task-definition {task_definition} "
            f"--query taskDefinition --output json | jq --arg family {task_family(task_definition)} --arg task "
            "CELL_BOT_TASK_ROLE_ARN --arg execution CELL_BOT_EXECUTION_ROLE_ARN '" + keep + "' > cell-bot.json")


def cell_task_definition_note(*, task_definition: str, cells: Sequence[EcsCell], listed: Sequence[EcsCell],
                              account: str, region: str, dispatcher_role: str, families: Sequence[str],
                              claim: bool, bot_permissions: Sequence[Mapping[str, Any]] = ()) -> str:
    """The operator's note for one release's task definition `task_definition` (its ARN, in `account`, the
    stack's), which `cells` of `listed` (ecsCells) do not map yet: what each cell's account must hold, the role's
    policies (`families`: the stack's bot task definition families), its cluster's capacity providers, its bot
    roles' grants (`bot_permissions`: the stack's botPermissions statements), the mapping."""
    where = ", ".join(f"{cell.name}: {cell.account}" for cell in cells)
    roles = "; ".join(f"{cell.name}: trust {trust_policy(dispatcher_role, cell.external_id)}, permissions "
                      f"{permission_policy(cell, region, families, claim=claim)}" for cell in cells)
    first, family = cells[0], task_family(task_definition)
    return (f"ecsCells: release task definition {task_definition} is registered in account {account} only, and ECS "
            f"runs only an account's own: a cell of another account that does not map it takes none of its sessions "
            f"(they start in the cells that do; with none, they fail release_image_missing). Not mapped in [{where}]. "
            "In "
            f"each, register the same bot: `{copy_command(task_definition, region)}`, then in cell-bot.json set each "
            "container's image to a copy in the cell account's registry, each secrets[].valueFrom to that account's "
            "own secret and its awslogs-group to a log group there, and with the cell's credentials "
            f"`aws ecs register-task-definition --region {region} --cli-input-json file://cell-bot.json --query "
            "taskDefinition.taskDefinitionArn`. The bots' task role there trusts ecs-tasks.amazonaws.com for that "
            "account's tasks only (aws:SourceAccount), and with the bot channel ecsCellBotTaskRoleArns lists it; "
            f"{role_grants(account, bot_permissions)}. Each cell's cluster (CLUSTER) has the capacity "
            "providers every RunTask names (ecsCapacityProviders), as the stack's own has: `aws ecs "
            f"put-cluster-capacity-providers --region {region} --cluster CLUSTER --capacity-providers FARGATE "
            "FARGATE_SPOT --default-capacity-provider-strategy capacityProvider=FARGATE,weight=1`. Then "
            f"map it in each, e.g. for {first.name} `pulumi config set --path "
            f"'ecsCells[{list(listed).index(first)}].task_definitions[\"{task_definition}\"]' {family}:<its revision "
            "there>`, and `pulumi up` again. Once per cell, the role the dispatcher "
            f"assumes ({'; '.join(c.role_arn for c in cells)}), CLUSTER and the capitals being the cell's own: {roles}"
            " (docs/operations.md, Setting up ECS cells)")


def network_note(cell: EcsCell, account: str) -> str | None:
    """What a cell of another account than `account` (the stack's) must name of its own: the stack passes its own
    cluster ARN, subnets and security groups, which RunTask in another account cannot use."""
    missing = [key for key, value in (("cluster", cell.cluster), ("subnets", cell.subnets),
                                      ("security_groups", cell.security_groups)) if not value]
    if cell.account == account or not missing:
        return None
    return (f"ecsCells: cell {cell.name} (account {cell.account}) names no {', '.join(missing)}, so the dispatcher "
            f"sends RunTask there the stack's own (account {account}'s), which that account cannot use: every launch "
            f"in the cell fails. Set the cell's {', '.join(missing)} to that account's own (docs/operations.md, "
            "Setting up ECS cells)")


def note_unmapped(*, cells: Sequence[EcsCell], releases: pulumi.Output[str], stack_arn: pulumi.Input[str],
                  dispatcher_role: pulumi.Input[str], region: str, families: Sequence[str], claim: bool,
                  resource: pulumi.Resource, bot_permissions: Sequence[Mapping[str, Any]] = ()) -> None:
    """Warns, once per release task definition some cell of another account does not map, what it must hold; and
    of each cell of another account that leaves its cluster or network to the stack's.
    `stack_arn`: any ARN of the stack's own account. An `up` says it once the release's ARN is known; a preview
    whose releases are all known (no new build) says it too."""
    def said(found: list[object]) -> None:
        text, arn, role = (str(item) for item in found)
        account = own_account(arn)
        for cell in cells:
            if (network := network_note(cell, account)) is not None:
                pulumi.log.warn(network, resource=resource)
        for task_definition, lacking in unmapped(cells, text, account).items():
            pulumi.log.warn(cell_task_definition_note(
                task_definition=task_definition, cells=lacking, listed=cells, account=account, region=region,
                dispatcher_role=role, families=families, claim=claim, bot_permissions=bot_permissions),
                resource=resource)

    pulumi.Output.all(releases, stack_arn, dispatcher_role).apply(said)
