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


def copy_command(template: str, project: str) -> str:
    """The commands that make `template` (its name) of `project` in a cell's project, whole: gcloud's
    `instance-templates create` takes flags, not a template (its `--source-instance` is a VM), so the REST insert
    is sent the template's own `properties` (its scheduling: maxRunDuration, termination DELETE, no automatic
    restart; its shielded VM; its metadata, block-project-ssh-keys among them), with only the bots' account and
    subnetwork changed to the cell's (the network follows from the subnetwork). Bash: the access token reaches curl
    as a header file (`-H @<(…)`, printf being bash's own), never on a command line other local users can read."""
    edit = ("'{name, description, properties: (.properties | .serviceAccounts[0].email = $account "
            "| .networkInterfaces[0].subnetwork = $subnet | del(.networkInterfaces[0].network, "
            ".networkInterfaces[0].name, .networkInterfaces[0].fingerprint, .metadata.fingerprint))}'")
    return (f"gcloud compute instance-templates describe {template} --project {project} --format json "
            "| jq --arg account CELL_BOTS_EMAIL --arg subnet projects/CELL_PROJECT/regions/REGION/subnetworks/"
            f"CELL_SUBNET {edit} | curl --fail-with-body -sS -X POST -H @<(printf 'Authorization: Bearer %s\\n' "
            "\"$(gcloud auth print-access-token)\") -H 'Content-Type: application/json' --data @- "
            "https://compute.googleapis.com/compute/v1/projects/CELL_PROJECT/global/instanceTemplates")


def cell_template_note(*, release: str, template: str, cells: Sequence[GceCell], project: str, zone: str,
                       dispatcher: str, repository: str) -> str:
    """The operator's note for one release's instance template `template` (its name), made by the stack in
    `project`, whose images come from the stack's repository `repository` (its id): what each cell's project
    must hold, and the grants."""
    where = ", ".join(f"{cell.name}: {cell.project} ({cell.zone or zone})" for cell in cells)
    return (f"gceCells: release {release}'s instance template {template} is made in {project} only; each cell "
            f"inserts its VMs from the template of that name in its own project, which this stack does not make. "
            f"Until a cell's project holds it, that cell takes none of {release}'s sessions, and with no cell "
            f"holding it they fail release_image_missing. Make it in every cell [{where}] as a whole copy of this "
            f"one, with the cell's own bots' service account and a subnetwork of the cell's own (in its zone's "
            f"region) whose firewall holds the bots' egress rules (tag {BOT_TAG}: UDP and TCP 443 out, everything "
            f"else denied), the secrets the template's metadata names readable by that account: "
            f"`{copy_command(template, project)}`. Once per cell: the dispatcher ({dispatcher}) holds the role "
            f"{LAUNCHER_ROLE} on the project (held to this stack's VMs, disks, templates and bots' subnetwork by "
            "its condition) and roles/iam.serviceAccountUser on the bots' account; the bots' account pulls the "
            f"images (roles/artifactregistry.reader on {repository} in {project}), writes logs and deletes its own "
            "VM (docs/operations.md, Setting up Compute Engine cells)")
