"""What each Cloud Run cell's project must hold for a release: the stack says it, and makes none of it.

With `cloudRunCells` the dispatcher runs a release's session in its cell's own project, as the job of
the release's name there (dispatcher/machines/cloudrun/settings.py `for_cell`). The stack makes each
release's job in its own project only: a job in a cell also needs that project's bots' service
account, secrets and network (Direct VPC egress into a subnetwork of the cell's own), which are the
operator's (docs/pulumi.md, Cloud Run cells, says why). So every `up` that defines a release's job
notes, once per release, the job each cell must hold, its image, and the grants it needs; until a
cell holds it, that cell's sessions of the release fail `release_image_missing`, naming the cell's
project.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatcher.machines.cloudrun.cell_settings import CloudRunCell

RUNNER_ROLE = "voicefleet_bot_job_runner"  # the role docs/operations.md (Cells) has made in each cell's project
SERVICE_AGENT = "service-CELL_PROJECT_NUMBER@serverless-robot-prod.iam.gserviceaccount.com"


def cell_job_note(*, release: str, job: str, image: str, cells: Sequence[CloudRunCell], project: str, region: str,
                  dispatcher: str, repository: str) -> str:
    """The operator's note for one release's job `job` (its name), made by the stack in `project`,
    `region`, running `image` from the stack's repository `repository` (its id): what each cell's
    project must hold, and the grants."""
    where = ", ".join(f"{cell.name}: {cell.project} ({cell.region or region})" for cell in cells)
    return (f"cloudRunCells: release {release}'s job {job} (image {image}) is made in {project} only; each cell runs "
            f"the job of that name in its own project, which this stack does not make. Until each cell's project "
            f"holds it, that cell's sessions of {release} fail release_image_missing. Make it in every cell "
            f"[{where}] from this one (`gcloud run jobs describe {job} --project {project} --region {region} "
            "--format export`, with the cell's own bots' service account, secrets and network), then grant the "
            f"dispatcher ({dispatcher}) the runner role on it (`gcloud run jobs add-iam-policy-binding {job} "
            f"--project CELL_PROJECT --region CELL_REGION --member {dispatcher} --role "
            f"projects/CELL_PROJECT/roles/{RUNNER_ROLE}`); once per cell, its Cloud Run service agent pulls the image "
            f"(`gcloud artifacts repositories add-iam-policy-binding {repository} --project {project} --location "
            f"{region} --member serviceAccount:{SERVICE_AGENT} --role roles/artifactregistry.reader`; "
            "docs/operations.md, Cells)")
