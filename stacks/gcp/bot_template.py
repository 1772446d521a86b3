"""BotTemplate: the instance templates per-session bot VMs are created from, one per kept release.

Each kept release (stacks/shared/release_builds.py) has its own template, which names that release's
images by digest and carries a `release` label; the dispatcher launches a session's VM from its
release's template (RELEASES). Templates are immutable, and a VM does not need its template once
created (only a managed instance group holds one: "It is not possible to delete templates that are
already in use by a managed instance group", compute/docs/reference/rest/v1/instanceTemplates/delete),
so a dropped release's template may go; it goes once its release stops retiring all the same.
Container-Optimized OS runs stacks/gcp/startup.py's script, which starts the digest-pinned bot
image with the session's values from instance metadata. The dispatcher sets `scheduling` per
instance (maxRunDuration for that session, DELETE at the end); the template carries a safe default
so a VM created without it still dies. `grant_launch` is the only way to let another identity
create bots: a custom role with the instance permissions that create needs, bound with an IAM
condition so that on instances it reaches only VMs named with this stack's prefix, and actAs on
the bot service account alone. Each bot VM may delete itself (by the same condition, only VMs of
this stack): the startup script ends the session that way instead of powering off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp.artifactregistry as gcp_artifactregistry
import pulumi_gcp.compute as gcp_compute
import pulumi_gcp.projects as gcp_projects
import pulumi_gcp.serviceaccount as gcp_serviceaccount

from dispatcher.machines.gce.cell_settings import GceCell
from stacks.config.limits import GCE_BOOT_GRACE_SECONDS
from stacks.gcp.cell_templates import cell_template_note
from stacks.gcp.network import BOT_TAG
from stacks.gcp.secrets import SecretStore
from stacks.gcp.startup import STARTUP_SCRIPT
from stacks.shared.contract import (
    GCE_CHANNEL_URL_METADATA_KEY,
    GCE_IMAGE_METADATA_KEY,
    GCE_SECRETS_METADATA_KEY,
    GCE_SETTINGS_METADATA_KEY,
    GCE_WEBRTC_IMAGE_METADATA_KEY,
)
from stacks.shared.release_builds import Build

COS_IMAGE = "projects/cos-cloud/global/images/family/cos-stable"
# What `instances.insert` from this template needs, plus watching and removing the result.
LAUNCH_PERMISSIONS = (
    "compute.disks.create",  # the boot disk
    "compute.instanceTemplates.get",  # its metadata and labels go along with each insert (item 6)
    "compute.instanceTemplates.useReadOnly",
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setLabels",  # session-id label
    "compute.instances.setMetadata",  # session values
    "compute.instances.setServiceAccount",  # the template's bot service account
    "compute.instances.setTags",  # the firewall's target tag
    "compute.subnetworks.use",
    "compute.subnetworks.useExternalIp",  # bots get an ephemeral public address
    "compute.zoneOperations.list",  # find an insert refused after acceptance (quota): review item 3
)
# What a bot VM may do to itself at the end of its session (stacks/gcp/startup.py).
SELF_DELETE_PERMISSIONS = ("compute.instances.delete",)
INSTANCE_TYPE = "compute.googleapis.com/Instance"
TEMPLATE_TYPE = "compute.googleapis.com/InstanceTemplate"
BOT_ROLE, WEBRTC_ROLE = "bot", "bot-webrtc"  # a release's images (images/component.py roles)


@dataclass(frozen=True)
class BotTemplateArgs:
    project: str
    prefix: str
    account_id: str
    subnetwork_id: pulumi.Input[str]
    repository_id: pulumi.Input[str]
    region: str
    zone: str
    instance_prefix: str  # GCE_INSTANCE_PREFIX: every bot VM's name starts with "<prefix>-"
    machine_type: str
    disk_gb: int
    max_session_seconds: int
    secrets: SecretStore | None = None
    secret_names: tuple[str, ...] = ()  # env names of the bot's provider keys and BOT_CHANNEL_TOKEN
    roles: tuple[str, ...] = ()  # what the team grants its bot (voicefleet:botPermissions), on the project
    channel_url: pulumi.Input[str] | None = None  # BOT_CHANNEL_URL: the dispatcher's wss:// channel
    # Its settings (stacks/config/observability.py: LOG_FORMAT, the trace collector's endpoint), as
    # `KEY=value,…` in the template's metadata; the startup script writes them into its env file.
    environment: Mapping[str, str] = field(default_factory=dict)
    cells: tuple[GceCell, ...] = ()  # gceCells: the projects that must hold each release's template too


def template_prefix(prefix: str) -> str:
    """Every release template's name starts so (then the provider's 26 generated characters)."""
    return f"{prefix}--bot-"


def pull_and_log(name: str, project: str, region: str, repository_id: pulumi.Input[str],
                 member: pulumi.Input[str], opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """What any bot's account needs, a VM's or a Cloud Run job's: pull the image, write its logs."""
    return [gcp_artifactregistry.RepositoryIamMember(f"{name}-pull", repository=repository_id, location=region,
                                                     role="roles/artifactregistry.reader", member=member, opts=opts),
            gcp_projects.IAMMember(f"{name}-logs", project=project, role="roles/logging.logWriter", member=member,
                                   opts=opts)]


def team_roles(name: str, project: str, roles: Sequence[str], member: pulumi.Input[str],
               opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """The roles the team grants its bot's account (voicefleet:botPermissions), each on the project: its
    SDK reaches them through the metadata server, as the account's own credentials."""
    # `roles/x.y` and a custom `projects/p/roles/x.y` are two grants: each name keeps the whole role.
    return [gcp_projects.IAMMember(f"{name}-permission-{role.removeprefix('roles/').replace('/', '-')}",
                                   project=project, role=role, member=member, opts=opts) for role in roles]


class BotTemplate(pulumi.ComponentResource):
    service_account_email: pulumi.Output[str]

    def __init__(self, name: str, args: BotTemplateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:BotTemplate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name = name
        self._project = args.project
        # IAM conditions see a compute instance as projects/P/zones/Z/instances/NAME.
        self._instances = f"projects/{args.project}/zones/{args.zone}/instances/{args.instance_prefix}-"
        # …and an instance template as projects/P/global/instanceTemplates/NAME.
        self._templates = f"projects/{args.project}/global/instanceTemplates/{template_prefix(args.prefix)}"
        self.account = gcp_serviceaccount.Account(name, account_id=args.account_id,
                                                  display_name="voicefleet bot VMs", opts=child)
        member = pulumi.Output.concat("serviceAccount:", self.account.email)
        # Everything a bot VM needs from IAM (pull, logs, its secrets, deleting itself): the dispatcher,
        # which starts VMs at once, waits for all of it (`grants`).
        self.grants: list[pulumi.Resource] = pull_and_log(name, args.project, args.region, args.repository_id,
                                                          member, child)
        self.grants += team_roles(name, args.project, args.roles, member, child)
        # The bot's provider keys and channel credential: the VM's account reads exactly these secrets, at boot; the
        # template names their pinned versions and exists only once the account may read them.
        grants: list[pulumi.Resource] = []
        secret_refs: pulumi.Input[str] = ""  # the same for every release's template
        if args.secrets is not None and args.secret_names:
            grants += args.secrets.grant_access("bot", member, args.secret_names)
            self.grants += grants
            secret_refs = args.secrets.version_names(args.secret_names)

        self._args, self._secret_refs, self._template_grants = args, secret_refs, grants
        self._launchers: list[pulumi.Output[str]] = []  # grant_launch's members, named in the cells' note
        self.grants += self._own_vms_only("self-delete", "voicefleet bot self-delete",
                                          "A bot VM deletes itself when its session ends", SELF_DELETE_PERMISSIONS,
                                          member)
        self.service_account_email = self.account.email
        self.register_outputs({"service_account_email": self.service_account_email})

    def release_template(self, release: Build) -> pulumi.Output[str]:
        """The release's template (projects/P/global/instanceTemplates/NAME): its images, this
        stack's settings. Named after the release, so a kept release keeps its template."""
        args = self._args
        template = gcp_compute.InstanceTemplate(
            f"{self._name}-{release.name}",
            # Templates are immutable: every change is a replacement, created before the old
            # one is deleted, so the name needs a generated suffix. "--": no stack name holds one,
            # so the launcher's IAM condition on this prefix reaches no other stack's templates.
            name_prefix=template_prefix(args.prefix),
            description=f"voicefleet release {release.name}: one VM per voice session",
            machine_type=args.machine_type,
            disks=[{"source_image": COS_IMAGE, "boot": True, "auto_delete": True, "disk_size_gb": args.disk_gb,
                    "disk_type": "pd-balanced"}],
            network_interfaces=[{"subnetwork": args.subnetwork_id, "access_configs": [{"network_tier": "PREMIUM"}]}],
            service_account={"email": self.account.email,
                             "scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
            metadata={
                "startup-script": STARTUP_SCRIPT,
                GCE_IMAGE_METADATA_KEY: release.images[BOT_ROLE],
                GCE_SECRETS_METADATA_KEY: self._secret_refs,
                GCE_SETTINGS_METADATA_KEY: ",".join(f"{k}={v}" for k, v in sorted(args.environment.items())),
                **({GCE_WEBRTC_IMAGE_METADATA_KEY: release.images[WEBRTC_ROLE]}
                   if WEBRTC_ROLE in release.images else {}),
                **({GCE_CHANNEL_URL_METADATA_KEY: args.channel_url} if args.channel_url is not None else {}),
                "block-project-ssh-keys": "true",
                "enable-oslogin": "TRUE",
            },
            tags=[BOT_TAG],
            labels={"role": "bot", "release": release.name},
            scheduling={
                "provisioning_model": "STANDARD",
                "automatic_restart": False,  # a restarted VM would rejoin a finished session
                "on_host_maintenance": "MIGRATE",
                "instance_termination_action": "DELETE",
                "max_run_duration": {"seconds": args.max_session_seconds + GCE_BOOT_GRACE_SECONDS},
            },
            shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True,
                                      "enable_integrity_monitoring": True},
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._template_grants),
        )
        if args.cells:
            self._note_cells(release.name, template.name)
        return pulumi.Output.concat("projects/", args.project, "/global/instanceTemplates/", template.name)

    def _note_cells(self, release: str, template: pulumi.Output[str]) -> None:
        """Says what each cell's project must hold for this release (stacks/gcp/cell_templates.py)."""
        args = self._args
        pulumi.Output.all(template, args.repository_id, *self._launchers).apply(
            lambda found: pulumi.log.warn(cell_template_note(
                release=release, template=str(found[0]), cells=args.cells, project=args.project, zone=args.zone,
                dispatcher=", ".join(map(str, found[2:])) or "the dispatcher's service account",
                repository=str(found[1])), resource=self))

    def _own_vms_only(self, suffix: str, title: str, description: str, permissions: tuple[str, ...],
                      member: pulumi.Input[str], grantee: str = "") -> list[pulumi.Resource]:
        """A custom role bound to `member` with a condition: on instances, only this stack's VMs.

        The condition leaves other resource types alone (zone operations, subnets, disks), because
        list calls are checked on the project or zone, not on an instance; and it narrows templates
        to this stack's own (`instances.insert` reads its source template with
        compute.instanceTemplates.useReadOnly and .get, checked on the template): granted on the
        project, those would read every template in it, other stacks' metadata included. The role id
        ends with part of the bot account's unique id, which GCP assigns anew whenever the account
        is created: a deleted role's id stays reserved for 37 days, so a fixed id would make
        re-creating the stack in that window fail; stable across `up`s."""
        base = f"{self._name}_{suffix}".replace("-", "_")
        role = gcp_projects.IAMCustomRole(
            f"{self._name}-{suffix}",
            project=self._project,
            role_id=self.account.unique_id.apply(lambda unique: f"{base}_{unique[-8:]}"),
            title=title,
            description=description,
            permissions=list(permissions),
            opts=pulumi.ResourceOptions(parent=self),
        )
        binding = gcp_projects.IAMMember(
            f"{self._name}-{suffix}" + (f"-{grantee}" if grantee else ""), project=self._project, role=role.name,
            member=member,
            condition={"title": f"{suffix} on this stack's bot VMs only",
                       "expression": f'(resource.type != "{INSTANCE_TYPE}" || '
                                     f'resource.name.startsWith("{self._instances}")) && '
                                     f'(resource.type != "{TEMPLATE_TYPE}" || '
                                     f'resource.name.startsWith("{self._templates}"))'},
            opts=pulumi.ResourceOptions(parent=self))
        return [role, binding]

    def grant_launch(self, grantee: str, member: pulumi.Output[str]) -> list[pulumi.Resource]:
        """Let `member` create bot VMs from this template (and act as the bot account only); the
        grants, for the launcher to wait for. Call it before the release templates are made."""
        self._launchers.append(member)
        granted = self._own_vms_only("launcher", "voicefleet bot launcher",
                                     "Create, watch and delete voicefleet bot VMs from the instance template",
                                     LAUNCH_PERMISSIONS, member, grantee)
        return [*granted, gcp_serviceaccount.IAMMember(f"{self._name}-act-as-{grantee}",
                                                        service_account_id=self.account.name,
                                                        role="roles/iam.serviceAccountUser", member=member,
                                                        opts=pulumi.ResourceOptions(parent=self))]
