"""`CLOUDRUN_CELLS`: the GCP projects a deployment's Cloud Run executions spread over, as a JSON list.

Each cell names its `project` and may name its own `region` and `job` (what a cell leaves out is the
deployment's: CLOUDRUN_REGION, CLOUDRUN_JOB, projects a stack made alike), the unique id of its
bots' service account (`bot_service_account_id`, else CLOUDRUN_BOT_SERVICE_ACCOUNT_ID: a bot's
identity token is checked against the project its execution runs in) and `max_executions`, the
most executions the deployment runs there: a soft cap under the project's quota of 1000 running
executions per region (unset: the quota alone), counted once, not per dispatcher replica, as
k8s/cell_settings.py's `max_pods` is: each replica's listing of the job's executions holds every
replica's, and between listings a replica adds only its own launches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.cell_list import cell_fields, cell_items, gcp_project, matching_field, named_once, whole_number

# Google's own rules (a project id: cell_list.gcp_project): a region; a job name up to 63 lower-case
# letters, digits or hyphens, from a letter; a service account's unique id, digits.
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_JOB = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ACCOUNT_ID = re.compile(r"[0-9]{1,32}")
FIELDS = ("name", "project", "region", "job", "bot_service_account_id", "max_executions")
EXAMPLE = '[{"name": "a", "project": "voicefleet-cell-a"}, {"name": "b", "project": "voicefleet-cell-b"}]'


@dataclass(frozen=True)
class CloudRunCell:
    name: str
    project: str
    region: str | None = None
    job: str | None = None
    bot_service_account_id: str | None = None
    max_executions: int | None = None


def cloudrun_cells(raw: str, region: str) -> tuple[CloudRunCell, ...]:
    """The cells `CLOUDRUN_CELLS` lists (empty: the one project CLOUDRUN_PROJECT names). `region`:
    the deployment's, where a cell names none."""
    items = cell_items("CLOUDRUN_CELLS", raw, EXAMPLE, "GCP project and region")
    cells = tuple(_cell(item, i) for i, item in enumerate(items))
    named_once("CLOUDRUN_CELLS", {"a cell": [c.name for c in cells],
                                  "a project and region": [f"{c.project} {c.region or region}" for c in cells]},
               "GCP project and region", "a project's quota of running executions in a region is not doubled "
               "by listing it twice")
    return cells


def _cell(item: Any, index: int) -> CloudRunCell:
    where = f"CLOUDRUN_CELLS[{index}]"
    item = cell_fields(item, where, FIELDS, EXAMPLE, "name and project")
    name = item["name"]
    project = gcp_project(item, f"{where} ({name})")
    region = matching_field(item, "region", where, _REGION, "a Cloud Run region, e.g. \"europe-west1\"")
    job = matching_field(item, "job", where, _JOB,
                         "a job's name in the project (not its path), e.g. \"voicefleet-bot\"")
    account = matching_field(item, "bot_service_account_id", where, _ACCOUNT_ID, "the bots' service account's "
                             "unique id (digits: `gcloud iam service-accounts describe <email> "
                             "--format='value(uniqueId)'`)")
    return CloudRunCell(name=name, project=project, region=region, job=job, bot_service_account_id=account,
                        max_executions=whole_number(item, "max_executions", f"{where} ({name})"))
