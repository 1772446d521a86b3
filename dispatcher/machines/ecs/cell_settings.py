"""`ECS_CELLS`: the AWS accounts a region's ECS launches spread over, as a JSON list.

Each cell names the role the dispatcher assumes in that account (`role_arn`, with the
`external_id` its trust policy asks for, if any) and may name that account's own `cluster`,
`task_definition`, `task_definition_webrtc`, `subnets` and `security_groups`; what a cell leaves
out is the deployment's own (ECS_CLUSTER, ECS_TASK_DEFINITION, …: accounts a stack made alike).
`task_definitions` maps each release's task definition (as `RELEASES` names it) to this account's
own: a task definition belongs to one account, so a release named by an ARN of another account
needs one here; a cell without it takes none of that release's sessions (passed over, not drained:
ecs/cells.py), and the dispatcher starts all the same. `max_tasks` caps the cell's tasks, every replica's
(a soft cap, read at each listing: dispatcher/machines/cells.py; unset: the account's own quotas).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.cell_list import cell_fields, cell_items, named_once, text_field, whole_number
from dispatcher.settings import SettingsError

# IAM's role path (printable ASCII from ! to ~) and name ([\w+=,.@-]) characters, and STS's
# ExternalId pattern and length: ASCII, as AWS's patterns are (Python's \w alone would let any
# letter through, refused by STS at run time).
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/(?:[!-.0-~]+/)*[\w+=,.@-]{1,64}", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_TASK_DEFINITION_ARN = re.compile(r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:(\d{12}):task-definition/.+")
FIELDS = ("name", "role_arn", "external_id", "cluster", "task_definition", "task_definition_webrtc",
          "task_definitions", "subnets", "security_groups", "max_tasks")
EXAMPLE = '[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/voicefleet-cell"}]'


@dataclass(frozen=True)
class EcsCell:
    name: str
    role_arn: str
    external_id: str | None = None
    cluster: str | None = None
    task_definition: str | None = None
    task_definition_webrtc: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    max_tasks: int | None = None
    task_definitions: tuple[tuple[str, str], ...] = ()  # a release's task definition → this account's own

    @property
    def account(self) -> str:
        """The AWS account the cell is: its role's."""
        return self.role_arn.split(":")[4]

    def own(self, task_definition: str) -> str:
        """What this account runs for a task definition the deployment or a release names."""
        return dict(self.task_definitions).get(task_definition, task_definition)

    def runs(self, task_definition: str) -> bool:
        """Whether this account can run what it is sent for `task_definition` (this account's own,
        `own`): not when that is another account's ARN, which ECS refuses (a copy not mapped yet)."""
        return other_account(self.own(task_definition), self.account) is None


def ecs_cells(raw: str) -> tuple[EcsCell, ...]:
    """The cells `ECS_CELLS` lists (empty: the one account the dispatcher's own credentials reach)."""
    cells = tuple(_cell(item, i) for i, item in enumerate(cell_items("ECS_CELLS", raw, EXAMPLE, "AWS account")))
    named_once("ECS_CELLS", {"a cell": [c.name for c in cells], "an account": [c.account for c in cells]},
               "AWS account", "one account's RunTask rate is not doubled by listing it twice")
    return cells


def other_account(task_definition: str, account: str) -> str | None:
    """The account of a task definition ARN that is not `account`'s (None: `account`'s own, or a
    family or family:revision, which ECS reads in the account it is sent to)."""
    match = _TASK_DEFINITION_ARN.fullmatch(task_definition)
    return match[1] if match is not None and match[1] != account else None


def foreign_task_definition(cell: EcsCell, runs: str, named: str, key: str) -> None:
    """Refuses a cell that would be sent (`runs`) a task definition ARN of another account: ECS
    runs only an account's own. `named`: the setting that names it; `key`: the cell's key to set."""
    match = _TASK_DEFINITION_ARN.fullmatch(runs)
    if match is not None and match[1] != cell.account:
        example = f'{{"{runs}": "bot:1"}}' if key == "task_definitions" else '"bot:1"'
        raise SettingsError(f"ECS_CELLS cell {cell.name} (account {cell.account}) cannot run the task definition "
                            f"{runs} that {named} names (account {match[1]}): set the cell's \"{key}\" to the same "
                            f"bot's task definition in account {cell.account}, e.g. \"{key}\": {example}")


def run_nowhere(cells: tuple[EcsCell, ...], task_definition: str, named: str) -> SettingsError:
    """No cell can run the deployment's `task_definition` (`named`): every session of it would be refused."""
    accounts = ", ".join(f"{cell.name} ({cell.account})" for cell in cells)
    return SettingsError(f"no ECS_CELLS cell can run the task definition {task_definition} that {named} names, "
                         f"another account's: register a copy in a cell's account and map it in that cell's "
                         f"\"task_definitions\", e.g. {{\"{task_definition}\": \"bot:1\"}} (cells: {accounts}), "
                         "as docs/operations.md says (Setting up ECS cells)")


def _cell(item: Any, index: int) -> EcsCell:
    where = f"ECS_CELLS[{index}]"
    item = cell_fields(item, where, FIELDS, EXAMPLE, "name and role_arn")
    name, role = item["name"], item.get("role_arn")
    if not isinstance(role, str) or not _ROLE_ARN.fullmatch(role):
        raise SettingsError(f"{where} ({name}): role_arn must be an IAM role ARN, arn:aws:iam::<account>:role/<name>")
    external = item.get("external_id")
    if external is not None and (not isinstance(external, str) or not _EXTERNAL_ID.fullmatch(external)):
        raise SettingsError(f"{where} ({name}): external_id must be 2-1224 characters of letters, digits and +=,.@:/-")
    max_tasks = whole_number(item, "max_tasks", f"{where} ({name})")
    return EcsCell(name=name, role_arn=role, external_id=external, cluster=text_field(item, "cluster", where),
                   task_definition=text_field(item, "task_definition", where),
                   task_definition_webrtc=text_field(item, "task_definition_webrtc", where),
                   subnets=_texts(item, "subnets", where), security_groups=_texts(item, "security_groups", where),
                   max_tasks=max_tasks, task_definitions=_mapping(item, "task_definitions", where))


def _mapping(item: Mapping[str, Any], key: str, where: str) -> tuple[tuple[str, str], ...]:
    value = item.get(key, {})
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
                                                 for k, v in value.items()):
        raise SettingsError(f"{where}: {key} must map each release's task definition to this account's own, "
                            "e.g. {\"arn:aws:ecs:eu-west-1:111111111111:task-definition/bot:7\": \"bot:3\"}")
    return tuple((k.strip(), v.strip()) for k, v in value.items())


def _texts(item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SettingsError(f"{where}: {key} must be a list of ids, e.g. [\"subnet-0abc\"]")
    return tuple(v.strip() for v in value)
