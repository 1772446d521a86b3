"""BotJob: the Cloud Run jobs whose executions are the bots, one per session (`MACHINES=cloudrun`).

One job per kept release, named after it: a run's overrides never set the image (googleapis
job.proto `ContainerOverride`: name, args, env, clear_args), so a release is a job of its own
(docs/pulumi.md, Releases, GCP).

The job runs the digest-pinned bot image as its own service account, one task per execution,
`maxRetries: 0` (a failed bot must not be run again into a finished session; the API's default is
3), and a timeout that a run's override replaces with the session's. The bot's provider keys are
Secret Manager references in the job's env (`value_source.secret_key_ref`: Cloud Run resolves
them at start, nobody reading the job sees a value); its channel URL and settings are plain env;
its own channel credential comes with each run (dispatcher/machines/cloudrun/provider.py).
Its tasks leave through the bots' subnetwork by Direct VPC egress (`vpc_access.network_interfaces`
with the bots' tag, `egress: ALL_TRAFFIC`: pulumi_gcp's `JobTemplateTemplateVpcAccessArgs`,
cloudrunv2/_inputs.py), so the bots' firewall and NAT (stacks/gcp/network.py) hold for them as
for the Compute Engine bots'. Its account id is not the Compute Engine bots' (`…-botjob`, not
`…-bot`): switching `botRuntime` creates the new account before deleting the old one.

`grant_run` is the only way to let another identity start bots: a custom role with exactly what
the provider calls (run with overrides, read and cancel executions, read their tasks), bound on
each release's job (`JobIamMember`), never on the project, and no actAs: running a job does not act
as its account. Nothing is granted on the bot's account, so only the job's tasks get its identity
tokens, which the dispatcher's hello check relies on (cloudrun/identity.py, docs/security.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp.cloudrunv2 as gcp_cloudrunv2
import pulumi_gcp.projects as gcp_projects
import pulumi_gcp.serviceaccount as gcp_serviceaccount

from bot.environment_check import ALLOWED_OPTION
from dispatcher.machines.cloudrun import GRACE_SECONDS
from dispatcher.machines.cloudrun.cell_settings import CloudRunCell
from dispatcher.machines.cloudrun.executions import OVERRIDE_NAMES
from stacks.gcp.bot_template import team_roles
from stacks.gcp.cell_jobs import cell_job_note
from stacks.gcp.network import BOT_TAG
from stacks.gcp.secrets import SecretStore
from stacks.shared.release_builds import Build

# What the provider calls, and nothing more (dispatcher/machines/cloudrun/provider.py).
RUN_PERMISSIONS = (
    "run.jobs.run",
    "run.jobs.runWithOverrides",  # a session's env, task count and timeout are overrides
    "run.executions.get",
    "run.executions.list",
    "run.executions.cancel",
    "run.tasks.list",  # a failed execution's exit code is its task's
)
CONTAINER = "bot"  # CLOUDRUN_CONTAINER: the container the overrides name
# A job's name: an RFC 1035 label, which the preflight holds to 49 characters as Cloud Run's service
# names (stacks/tools/preflight/names.py); an execution's name adds a dash and five characters.
MAX_JOB_NAME = 49
# The bot image's ENTRYPOINT (images/bot.Dockerfile; a test holds them equal) with the job's
# allow-list before `-m bot`: a run's overrides replace env and args, never the command, so the
# isolated host refuses any variable neither the job nor the dispatcher sets (bot/environment_check.py).
ENTRYPOINT = ("/usr/bin/tini", "-e", "143", "--", "python", "-I", "-u", "-B", "-m", "bot")


def job_command(template_names: Iterable[str]) -> list[str]:
    """The job's container command: the image's entrypoint, told which variable names are the job's."""
    names = ",".join(sorted({*template_names, *OVERRIDE_NAMES}))
    at = ENTRYPOINT.index("-m")
    return [*ENTRYPOINT[:at], "-X", f"{ALLOWED_OPTION}={names}", *ENTRYPOINT[at:]]


@dataclass(frozen=True)
class BotJobArgs:
    project: str
    prefix: str
    account_id: str
    region: str
    max_session_seconds: int
    secrets: SecretStore | None = None
    secret_names: tuple[str, ...] = ()  # env names of the bot's provider keys (never the channel's secret)
    roles: tuple[str, ...] = ()  # what the team grants its bot (voicefleet:botPermissions), on the project
    channel_url: pulumi.Input[str] | None = None  # BOT_CHANNEL_URL
    environment: Mapping[str, str] = field(default_factory=dict)  # LOG_FORMAT, the trace collector, …
    cpu: str = "1"
    memory: str = "2Gi"
    grace_seconds: int = GRACE_SECONDS  # CLOUDRUN_GRACE_SECONDS: the default timeout's slack, as each run's
    subnetwork_id: pulumi.Input[str] | None = None  # the bots' (Direct VPC egress); None: Google's own egress
    cells: tuple[CloudRunCell, ...] = ()  # cloudRunCells: the projects that must hold each release's job too
    repository: str = ""  # the stack's Artifact Registry repository id, which the cells pull from


def job_name(prefix: str, release: str) -> str:
    """`<prefix>-<release>`, or, past MAX_JOB_NAME, the release's first characters and a digest of its name."""
    name = f"{prefix}-{release}"
    if len(name) <= MAX_JOB_NAME:
        return name
    digest = hashlib.sha256(release.encode()).hexdigest()[:8]
    return f"{prefix}-{release[:MAX_JOB_NAME - len(prefix) - 10].rstrip('-')}-{digest}"


class BotJob(pulumi.ComponentResource):
    service_account_email: pulumi.Output[str]
    service_account_unique_id: pulumi.Output[str]  # CLOUDRUN_BOT_SERVICE_ACCOUNT_ID

    def __init__(self, name: str, args: BotJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:BotJob", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name, self._args = name, args
        self.account = gcp_serviceaccount.Account(name, account_id=args.account_id,
                                                  display_name="voicefleet bot job", opts=child)
        member = pulumi.Output.concat("serviceAccount:", self.account.email)
        # No image reader and no log writer, unlike a VM's account: in the job's own project the Cloud
        # Run service agent pulls the image ("If your repositories are in a different project, you
        # must grant Artifact Registry Reader permissions to the Cloud Run Service Agent",
        # cloud.google.com/artifact-registry/docs/integrate-cloud-run), and Cloud Run sends the
        # container's stdout and stderr to Cloud Logging itself (run/docs/logging), as the dispatcher's.
        self.grants: list[pulumi.Resource] = team_roles(name, args.project, args.roles, member, child)
        secret_env: list[dict[str, object]] = []
        if args.secrets is not None and args.secret_names:
            self.grants += args.secrets.grant_access("bot-job", member, args.secret_names)
            secret_env = args.secrets.env(args.secret_names)
        self._plain = {**args.environment,
                       **({"BOT_CHANNEL_URL": args.channel_url} if args.channel_url is not None else {}),
                       # Cloud Run documents no UDP: the bot's media goes to the relay over TCP (bot/ice.py).
                       "BOT_TURN_TRANSPORT": "tcp"}
        self._secret_env = secret_env
        self._runners: list[tuple[str, pulumi.Input[str]]] = []  # (grantee, member) granted run on every job
        self._role: gcp_projects.IAMCustomRole | None = None
        self.service_account_email = self.account.email
        self.service_account_unique_id = self.account.unique_id
        self.register_outputs({"service_account_email": self.service_account_email})

    def release_job(self, release: Build, image: str) -> pulumi.Output[str]:
        """The release's job (projects/P/locations/R/jobs/NAME), running `image`, with the run grants."""
        args = self._args
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": image,
            "commands": job_command([*self._plain, *(str(entry["name"]) for entry in self._secret_env)]),
            "resources": {"limits": {"cpu": args.cpu, "memory": args.memory}},
            "envs": [{"name": k, "value": v} for k, v in sorted(self._plain.items())] + self._secret_env,
        }
        template: Any = {  # the typed dicts' nesting, as the other stacks' resources write it
            "task_count": 1,
            "parallelism": 1,
            "template": {
                "service_account": self.account.email,
                "max_retries": 0,
                "timeout": f"{args.max_session_seconds + args.grace_seconds}s",
                "containers": [container],
            },
        }
        if args.subnetwork_id is not None:
            template["template"]["vpc_access"] = {
                "network_interfaces": [{"subnetwork": args.subnetwork_id, "tags": [BOT_TAG]}],
                "egress": "ALL_TRAFFIC",
            }
        job = gcp_cloudrunv2.Job(
            f"{self._name}-{release.name}",
            name=job_name(args.prefix, release.name),
            location=args.region,
            # Never protected, whatever `protect` says: the job holds nothing to lose (its account and
            # secrets are resources of their own), and a retired release or a switch of botRuntime to gce
            # deletes it, which the provider refuses while the state holds `true` (`resourceCloudRunV2JobDelete`:
            # "cannot destroy job without setting deletion_protection=false and running `terraform
            # apply`", terraform-provider-google cloudrunv2/resource_cloud_run_v2_job.go).
            deletion_protection=False,
            labels={"role": "bot", "release": release.name},
            template=template,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.grants),
        )
        bindings = [gcp_cloudrunv2.JobIamMember(
            f"{self._name}-{release.name}-runner-{grantee}", project=args.project, location=args.region,
            name=job.name, role=self._runner_role().name, member=member, opts=pulumi.ResourceOptions(parent=self))
            for grantee, member in self._runners]
        if args.cells:
            self._note_cells(release.name, job_name(args.prefix, release.name), image)
        path = pulumi.Output.concat("projects/", args.project, "/locations/", args.region, "/jobs/", job.name)
        # The path waits for the run grants: whoever launches from it (the dispatcher) can run the job.
        return pulumi.Output.all(path, *(binding.etag for binding in bindings)).apply(lambda values: str(values[0]))

    def _note_cells(self, release: str, job: str, image: str) -> None:
        """Says what each cell's project must hold for this release (stacks/gcp/cell_jobs.py)."""
        args = self._args
        members = pulumi.Output.all(*(member for _, member in self._runners))
        members.apply(lambda found: pulumi.log.warn(cell_job_note(
            release=release, job=job, image=image, cells=args.cells, project=args.project, region=args.region,
            dispatcher=", ".join(map(str, found)) or "the dispatcher's service account",
            repository=args.repository), resource=self))

    def grant_run(self, grantee: str, member: pulumi.Input[str]) -> list[pulumi.Resource]:
        """Let `member` run the release jobs' executions with overrides, read and cancel them: bound on
        each job (release_job), never on the project. Call it before the jobs are made."""
        self._runners.append((grantee, member))
        return [self._runner_role()]

    def _runner_role(self) -> gcp_projects.IAMCustomRole:
        if self._role is None:
            base = f"{self._name}_runner".replace("-", "_")
            self._role = gcp_projects.IAMCustomRole(
                f"{self._name}-runner", project=self._args.project,
                # a deleted role's id stays reserved for 37 days: part of the account's unique id keeps re-creation free
                role_id=self.account.unique_id.apply(lambda unique: f"{base}_{unique[-8:]}"),
                title="voicefleet bot job runner",
                description="Run voicefleet bot executions with overrides, watch and cancel them",
                permissions=list(RUN_PERMISSIONS), opts=pulumi.ResourceOptions(parent=self))
        return self._role
