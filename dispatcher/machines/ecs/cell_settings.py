"""`ECS_CELLS`: the AWS accounts a region's ECS launches spread over, as a JSON list.

Each cell names the role the dispatcher assumes in that account (`role_arn`, with the
`external_id` its trust policy asks for, if any) and may name that account's own `cluster`,
`task_definition`, `task_definition_webrtc`, `subnets` and `security_groups`; what a cell leaves
out is the deployment's own (ECS_CLUSTER, ECS_TASK_DEFINITION, …: accounts a stack made alike).
`max_tasks` caps the tasks the dispatcher runs there (unset: the account's own quotas).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.settings import SettingsError

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/(?:[^/]+/)*[\w+=,.@-]{1,64}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")  # AssumeRole's ExternalId pattern and length
FIELDS = ("name", "role_arn", "external_id", "cluster", "task_definition", "task_definition_webrtc", "subnets",
          "security_groups", "max_tasks")
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


def ecs_cells(raw: str) -> tuple[EcsCell, ...]:
    """The cells `ECS_CELLS` lists (empty: the one account the dispatcher's own credentials reach)."""
    if not raw.strip():
        return ()
    try:
        listed = json.loads(raw)
    except ValueError:
        raise SettingsError(f"ECS_CELLS is not JSON: write a list of cells, e.g. {EXAMPLE}") from None
    if not isinstance(listed, list) or not listed:
        raise SettingsError(f"ECS_CELLS must be a non-empty JSON list of cells, e.g. {EXAMPLE}")
    cells = tuple(_cell(item, i) for i, item in enumerate(listed))
    names = [cell.name for cell in cells]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise SettingsError(f"ECS_CELLS names a cell twice: {', '.join(twice)} (each cell's name is its own)")
    return cells


def _cell(item: Any, index: int) -> EcsCell:
    where = f"ECS_CELLS[{index}]"
    if not isinstance(item, Mapping):
        raise SettingsError(f"{where} must be an object with at least name and role_arn, e.g. {EXAMPLE}")
    if unknown := sorted(set(item) - set(FIELDS)):
        raise SettingsError(f"{where}: unknown field {unknown[0]!r} (a cell has {', '.join(FIELDS)})")
    name, role = item.get("name"), item.get("role_arn")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingsError(f"{where}: name must be 1-32 lower-case letters, digits or '-' (got {str(name)[:40]!r})")
    if not isinstance(role, str) or not _ROLE_ARN.fullmatch(role):
        raise SettingsError(f"{where} ({name}): role_arn must be an IAM role ARN, arn:aws:iam::<account>:role/<name>")
    external = item.get("external_id")
    if external is not None and (not isinstance(external, str) or not _EXTERNAL_ID.fullmatch(external)):
        raise SettingsError(f"{where} ({name}): external_id must be 2-1224 characters of letters, digits and +=,.@:/-")
    max_tasks = item.get("max_tasks")
    if max_tasks is not None and (not isinstance(max_tasks, int) or isinstance(max_tasks, bool) or max_tasks < 1):
        raise SettingsError(f"{where} ({name}): max_tasks must be a whole number of at least 1")
    return EcsCell(name=name, role_arn=role, external_id=external, cluster=_text(item, "cluster", where),
                   task_definition=_text(item, "task_definition", where),
                   task_definition_webrtc=_text(item, "task_definition_webrtc", where),
                   subnets=_texts(item, "subnets", where), security_groups=_texts(item, "security_groups", where),
                   max_tasks=max_tasks)


def _text(item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SettingsError(f"{where}: {key} must be a non-empty string")
    return value.strip() if value is not None else None


def _texts(item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SettingsError(f"{where}: {key} must be a list of ids, e.g. [\"subnet-0abc\"]")
    return tuple(v.strip() for v in value)
