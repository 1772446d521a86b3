"""What each Compute Engine cell's project must hold for a release: the stack says it, and makes none of it.

With `gceCells` the dispatcher inserts a release's session VM in its cell's own project, from the
instance template of the release's template's name there (dispatcher/machines/gce/settings.py
`for_cell`). The stack makes each release's template in its own project only, under a generated
name, a new one for each build: a template in a cell also names that project's bots' service
account, a subnetwork of its own with the bots' egress firewall rules, and secrets the bots' account
there may read, which are the operator's (docs/operations.md, "Setting up Compute Engine cells").
So every `up` that defines a release's template notes, once per release, the template each cell
must hold and the grants; until a cell holds it, that cell is passed over for the release's starts
(not drained), and with none holding it they fail `release_image_missing`, naming the template.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatcher.machines.gce.cell_settings import GceCell
from stacks.gcp.network import BOT_TAG

LAUNCHER_ROLE = "voicefleet_bot_launcher"  # the role docs/operations.md (Cells) has made in each cell's project


def cell_template_note(*, release: str, template: str, cells: Sequence[GceCell], project: str, zone: str,
                       dispatcher: str, repository: str) -> str:
    """The operator's note for one release's instance template `template` (its name), made by the stack in
    `project`, whose images come from the stack's repository `repository` (its id): what each cell's project
    must hold, and the grants."""
    where = ", ".join(f"{cell.name}: {cell.project} ({cell.zone or zone})" for cell in cells)
    return (f"gceCells: release {release}'s instance template {template} is made in {project} only; each cell "
            f"inserts its VMs from the template of that name in its own project, which this stack does not make. "
            f"Until a cell's project holds it, that cell takes none of {release}'s sessions, and with no cell "
            f"holding it they fail release_image_missing. Make it in every cell [{where}] from this one (`gcloud "
            f"compute instance-templates describe {template} --project {project} --format json`, then `gcloud "
            "compute instance-templates create` of that name in the cell's project, with the cell's own bots' "
            f"service account, a subnetwork of the cell's own whose firewall holds the bots' egress rules (tag "
            f"{BOT_TAG}: UDP and TCP 443 out, everything else denied) and the secrets the template's metadata "
            f"names readable by that account). Once per cell: the dispatcher ({dispatcher}) holds the role "
            f"{LAUNCHER_ROLE} on the project (held to this stack's VMs and templates by its condition) and "
            "roles/iam.serviceAccountUser on the bots' account; the bots' account pulls the images "
            f"(roles/artifactregistry.reader on {repository} in {project}), writes logs and deletes its own VM "
            "(docs/operations.md, Setting up Compute Engine cells)")
