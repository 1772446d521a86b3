"""`MACHINES=cloudrun` settings (CloudRunSettings), apart from the Cloud Run client (provider.py) so
that reading them, as `voicefleet config check` does, imports no HTTP client or token verifier
(aiohttp, google-auth, cryptography).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from dispatcher.channel.identity import identity_audience
from dispatcher.machines.call_timings import call_timings
from dispatcher.machines.cloudrun import GRACE_SECONDS
from dispatcher.machines.cloudrun.cell_settings import CloudRunCell, cloudrun_cells
from dispatcher.machines.gce.settings import DEFAULT_CERTS_URL
from dispatcher.machines.releases import release_references
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError, api_endpoint, require
from voicefleet_settings.read import setting_int, setting_text

DEFAULT_API_URL = "https://run.googleapis.com/v2"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Google publishes no number for `jobs.run` requests per minute (the quotas page has Admin API
# rows whose values vary by project; machines_apis.md §3.2): one run a second, five at once,
# counted once for the deployment (dispatcher/machines/creates.py) until CLOUDRUN_RUN_RATE/_BURST
# set the project's own.
DEFAULT_RUN_RATE = Rate(per_second=1.0, burst=5)


@dataclass(frozen=True)
class CloudRunSettings:
    project: str
    region: str
    job: str
    container: str = "bot"  # the job's container the overrides name
    api_url: str = DEFAULT_API_URL
    grace_seconds: int = GRACE_SECONDS  # timeout = max session + this (boot, goodbye)
    anonymous: bool = False  # CLOUDRUN_AUTH=none: tests against a local fake only
    timeout: float = 15.0
    retry_deadline: float = 15.0
    poll_seconds: float = 1.0
    run_rate: Rate = DEFAULT_RUN_RATE
    # The bots' identity tokens (cloudrun/identity.py): the audience they name, the unique id of
    # the bots' own service account, and where Google publishes its signing keys.
    identity_audience: str | None = None
    bot_service_account_id: str | None = None
    identity_certs_url: str = DEFAULT_CERTS_URL
    release_jobs: tuple[str, ...] = ()  # the jobs the deployment's releases name (RELEASES)
    # CLOUDRUN_CELLS: the GCP projects executions spread over (cloudrun/cells.py); empty: CLOUDRUN_PROJECT alone.
    cells: tuple[CloudRunCell, ...] = ()
    # A cell's: the deployment's own project's jobs path (`/projects/P/locations/R/jobs/`), whose jobs
    # (a release's, as the stack names it) are this project's jobs of the same name.
    same_name_from: str = ""

    @property
    def job_path(self) -> str:
        return self.path_of(self.job)

    def path_of(self, job: str) -> str:
        """A job's API path: a bare name is a job of this project and region; a path is kept (one of
        the deployment's own project, for a cell: the job of that name in the cell's project)."""
        if "/" in job:
            path = "/" + job.strip("/")
            if not self.same_name_from or not path.startswith(self.same_name_from):
                return path
            job = path.removeprefix(self.same_name_from)
        return f"/projects/{self.project}/locations/{self.region}/jobs/{job}"

    @property
    def jobs(self) -> tuple[str, ...]:
        """Every job whose executions are this deployment's: its own and its releases'."""
        return tuple(dict.fromkeys((self.job_path, *map(self.path_of, self.release_jobs))))

    def for_cell(self, cell: CloudRunCell) -> CloudRunSettings:
        """One cell's settings: its project, and its own region, job and bots' service account where
        it names them. A release's job is the job of its name in the cell's project (the stack names
        it by a path in the deployment's own project); one named by a path of another project must
        be of the cell's, and so must the deployment's own job (CLOUDRUN_JOB): a session runs in its cell,
        whose quota and service accounts are its project's."""
        own = replace(self, project=cell.project, region=cell.region or self.region, job=cell.job or self.job,
                      bot_service_account_id=cell.bot_service_account_id or self.bot_service_account_id, cells=(),
                      same_name_from=f"/projects/{self.project}/locations/{self.region}/jobs/")
        prefix = f"/projects/{own.project}/locations/{own.region}/jobs/"
        if not own.job_path.startswith(prefix):
            raise SettingsError(f"CLOUDRUN_CELLS cell {cell.name} (project {own.project}, {own.region}) cannot run "
                                f"CLOUDRUN_JOB {own.job}, a job of another project or region: set CLOUDRUN_JOB to the "
                                f"job's name alone (or its path in {self.project}, {self.region}), or give the cell "
                                "its own `job`, and make a job of that name in each cell's project")
        for job in own.release_jobs:
            if not own.path_of(job).startswith(prefix):
                raise SettingsError(f"CLOUDRUN_CELLS cell {cell.name} (project {own.project}, {own.region}) cannot run "
                                    f"the release job {job} of another project or region: name a release's job by its "
                                    f"name alone in RELEASES (or by its path in {self.project}, {self.region}), and "
                                    "make a job of that name in each cell's project")
        return own

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CloudRunSettings:
        required = require(env, ("CLOUDRUN_PROJECT", "CLOUDRUN_REGION", "CLOUDRUN_JOB"), "cloudrun")
        api_url, auth = api_endpoint(env, "CLOUDRUN_API_URL", DEFAULT_API_URL, "CLOUDRUN_AUTH")
        settings = cls(
            project=required["CLOUDRUN_PROJECT"],
            region=required["CLOUDRUN_REGION"],
            job=required["CLOUDRUN_JOB"],
            container=setting_text(env, "CLOUDRUN_CONTAINER"),
            api_url=api_url,
            grace_seconds=setting_int(env, "CLOUDRUN_GRACE_SECONDS"),
            anonymous=auth == "none",
            **call_timings(env, "CLOUDRUN"),
            run_rate=Rate.from_env(env, "CLOUDRUN_RUN"),
            identity_audience=identity_audience(env),
            bot_service_account_id=setting_text(env, "CLOUDRUN_BOT_SERVICE_ACCOUNT_ID") or None,
            identity_certs_url=setting_text(env, "CLOUDRUN_IDENTITY_CERTS_URL"),
            release_jobs=release_references(env),
            cells=cloudrun_cells(setting_text(env, "CLOUDRUN_CELLS"), required["CLOUDRUN_REGION"]),
        )
        for cell in settings.cells:  # a release's job each cell cannot run: refused at start-up
            settings.for_cell(cell)
        return settings
