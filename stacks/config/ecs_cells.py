"""`ecsCells`: the AWS accounts a stack's ECS bots spread over (the dispatcher's ECS_CELLS).

Each cell is an account with its own Fargate launch bucket and vCPU quota, reached through a role
the dispatcher assumes there (dispatcher/machines/ecs/cells.py). The stack reads the list as the
dispatcher reads ECS_CELLS (one parser, stacks/config/cells.py), passes it on, makes the store the
dispatcher needs for it (each session's cell is recorded there), lets the dispatcher's task role
assume exactly the cells' roles (stacks/aws/dispatcher.py), counts each account in the ceiling
(stacks/config/ceiling_cells.py) and notes, for each release, what each cell's account must hold
(stacks/aws/cell_task_definitions.py). It makes nothing in the cells' accounts.

A bot proves its task with its task role's STS session, and the dispatcher admits only the roles
ECS_BOT_TASK_ROLE_ARNS lists, in the role's own account (dispatcher/machines/ecs/identity.py): with
the bot channel, `ecsCellBotTaskRoleArns` lists each cell account's bots' task roles, added to the
stack's own. ECS_CELLS has no field for them (cell_settings.FIELDS), so they are a key of their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict

from dispatcher.machines.ecs.cell_settings import EcsCell, ecs_cells
from dispatcher.machines.ecs.settings import task_roles
from dispatcher.settings import SettingsError
from stacks.config import cells as stack_cells
from stacks.config.reader import NAMESPACE, Reader

CELLS_KEY = "ecsCells"
BOT_ROLES_KEY = "ecsCellBotTaskRoleArns"
RUNTIME = "ecs"  # the AWS stack's bots are Fargate tasks: its only runtime
_CLUSTER_ARN = re.compile(r"arn:(?P<partition>aws[a-z-]*):ecs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
                          r"cluster/(?P<name>.+)")


def cells(cfg: Reader) -> tuple[EcsCell, ...]:
    """The accounts `ecsCells` lists, read as the dispatcher reads ECS_CELLS."""
    return stack_cells.read(cfg, CELLS_KEY, ecs_cells, runtime=RUNTIME, bot_runtime=RUNTIME,
                            otherwise="another runtime has cells keys of its own")


def bot_roles(cfg: Reader, listed: tuple[EcsCell, ...], *, channel: bool) -> tuple[str, ...]:
    """`ecsCellBotTaskRoleArns`, checked against the cells: no role is of an account no cell is (it would let
    that account's tasks vouch for bots it never launched). That every cell's account has one is `admitted`'s,
    once the stack's own account is known."""
    arns = tuple(dict.fromkeys(cfg.string_list(BOT_ROLES_KEY)))
    if arns and not channel:
        raise cfg.fail(BOT_ROLES_KEY, "is set but the stack has no bot channel, so no bot's role is checked: "
                                      f"`pulumi config rm {cfg.command_key(BOT_ROLES_KEY)}`")
    if arns and not listed:
        raise cfg.fail(BOT_ROLES_KEY, f"is set but {CELLS_KEY} lists no cell: "
                                      f"`pulumi config rm {cfg.command_key(BOT_ROLES_KEY)}`")
    try:
        roles = task_roles(",".join(arns))
    except SettingsError as exc:
        raise cfg.fail(BOT_ROLES_KEY, f"is not a list of role ARNs the dispatcher takes: {exc}") from None
    accounts = {cell.account for cell in listed}
    if stray := [arn for arn, role in zip(arns, roles, strict=True) if role.account not in accounts]:
        raise cfg.fail(BOT_ROLES_KEY, f"names {', '.join(stray)}, of an account no {CELLS_KEY} cell is: the "
                                      "dispatcher would admit bots of that account's tasks; remove it")
    return arns


def admitted(listed: Sequence[EcsCell], arns: Sequence[str], own_account: str) -> tuple[str, ...]:
    """`arns` (ecsCellBotTaskRoleArns), refused with the bot channel while a cell of an account other than
    `own_account` (the stack's, whose own bots' task roles the dispatcher admits already) has none of its
    bots' task roles there: the dispatcher would refuse every bot's hello in that cell."""
    accounts = {role.account for role in task_roles(",".join(arns))}
    bare = [cell for cell in listed if cell.account != own_account and cell.account not in accounts]
    if not bare:
        return tuple(arns)
    cfg = Reader(NAMESPACE)
    raise cfg.fail(BOT_ROLES_KEY, f"names no bots' task role of the account of cell(s) "
                                  f"{', '.join(f'{c.name} ({c.account})' for c in bare)}: with the bot channel the "
                                  "dispatcher admits a bot only if its task's role is listed, so every bot there would "
                                  "be refused. Add the task role the cell's bot task definition names (the "
                                  "CELL_BOT_TASK_ROLE_ARN of the copy the stack's note registers there), e.g. "
                                  f"`pulumi config set --path '{cfg.command_key(BOT_ROLES_KEY)}[{len(arns)}]' "
                                  f"arn:{bare[0].role_arn.split(':')[1]}:iam::{bare[0].account}:role/<its name>`")


def partition(region: str) -> str:
    """The AWS partition a region is in (the ARNs of its resources and the roles its STS can hand out)."""
    for prefix, name in (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"),
                         ("us-isof-", "aws-iso-f"), ("eu-isoe-", "aws-iso-e"), ("us-iso-", "aws-iso")):
        if region.startswith(prefix):
            return name
    return "aws"


def check_reachable(cfg: Reader, listed: Sequence[EcsCell], region: str) -> None:
    """Refuses a cell the stack's dispatcher (in `region`) can never run in: a role of another partition (its
    STS hands out none) or a `cluster` ARN of another account or region than the cell's (RunTask in the cell's
    account takes only its own clusters, and the cell's permission policy names that account's)."""
    wanted = partition(region)
    for index, cell in enumerate(listed):
        if (found := cell.role_arn.split(":")[1]) != wanted:
            raise cfg.fail(CELLS_KEY, f"cell {cell.name}'s role_arn {cell.role_arn} is of the {found} partition, and "
                                      f"aws:region {region} is of {wanted}: the dispatcher cannot assume a role of "
                                      "another partition. Name a role of that partition (arn:"
                                      f"{wanted}:iam::<account>:role/<name>) or run the cell from a stack there")
        if cell.cluster is None or (match := _CLUSTER_ARN.fullmatch(cell.cluster)) is None:
            continue
        if (match["partition"], match["region"], match["account"]) != (wanted, region, cell.account):
            raise cfg.fail(CELLS_KEY, f"cell {cell.name}'s cluster {cell.cluster} is not a cluster of its account "
                                      f"{cell.account} in {region}: the dispatcher runs the cell's bots there with "
                                      "the cell's role, which reaches its own account's clusters only. Set its name "
                                      f"or ARN there, e.g. `pulumi config set --path '{cfg.command_key(CELLS_KEY)}"
                                      f"[{index}].cluster' arn:{wanted}:ecs:{region}:{cell.account}:cluster/"
                                      f"{match['name']}`")


def listed(setting: str) -> tuple[EcsCell, ...]:
    """The cells of an ECS_CELLS value the stack's settings hold (`cells_setting`'s, checked: "" none)."""
    return ecs_cells(setting) if setting else ()


def cells_setting(listed: tuple[EcsCell, ...]) -> str:
    """ECS_CELLS for the dispatcher: the cells as JSON, each with the fields it set (`task_definitions` the
    mapping the dispatcher reads, not the pairs the cell holds it as; an empty list left out as unset)."""
    if not listed:
        return ""
    return json.dumps([{k: (dict(v) if k == "task_definitions" else v) for k, v in asdict(cell).items()
                        if v is not None and v != ()} for cell in listed], separators=(",", ":"))
