"""BotTemplate: the instance template every per-session bot VM is created from.

Container-Optimized OS runs stacks/gcp_startup.py's script, which starts the digest-pinned bot
image with the session's values from instance metadata. The dispatcher sets `scheduling` per
instance (maxRunDuration for that session, DELETE at the end); the template carries a safe default
so a VM created without it still dies. `grant_launch` is the only way to let another identity
create bots: a custom role with the instance permissions that create needs, and actAs on the bot
service account alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from stacks.contract import GCE_IMAGE_METADATA_KEY
from stacks.gcp_network import BOT_TAG
from stacks.gcp_startup import STARTUP_SCRIPT
from stacks.settings import GCE_BOOT_GRACE_SECONDS

COS_IMAGE = "projects/cos-cloud/global/images/family/cos-stable"
# What `instances.insert` from this template needs, plus watching and removing the result.
LAUNCH_PERMISSIONS = (
    "compute.disks.create",  # the boot disk
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
    "compute.zoneOperations.get",  # wait for the insert operation
)


@dataclass(frozen=True)
class BotTemplateArgs:
    project: str
    prefix: str
    account_id: str
    image: pulumi.Input[str]  # digest-pinned
    subnetwork_id: pulumi.Input[str]
    repository_id: pulumi.Input[str]
    region: str
    machine_type: str
    disk_gb: int
    max_session_seconds: int


class BotTemplate(pulumi.ComponentResource):
    template_path: pulumi.Output[str]  # projects/P/global/instanceTemplates/NAME
    service_account_email: pulumi.Output[str]

    def __init__(self, name: str, args: BotTemplateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:BotTemplate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name = name
        self._project = args.project
        self.account = gcp.serviceaccount.Account(name, account_id=args.account_id,
                                                  display_name="voicefleet bot VMs", opts=child)
        member = pulumi.Output.concat("serviceAccount:", self.account.email)
        gcp.artifactregistry.RepositoryIamMember(f"{name}-pull", repository=args.repository_id, location=args.region,
                                                 role="roles/artifactregistry.reader", member=member, opts=child)
        gcp.projects.IAMMember(f"{name}-logs", project=args.project, role="roles/logging.logWriter", member=member,
                               opts=child)

        template = gcp.compute.InstanceTemplate(
            name,
            # Templates are immutable: every change is a replacement, created before the old
            # one is deleted, so the name needs a generated suffix.
            name_prefix=f"{args.prefix}-bot-",
            description="voicefleet: one VM per voice session",
            machine_type=args.machine_type,
            disks=[{"source_image": COS_IMAGE, "boot": True, "auto_delete": True, "disk_size_gb": args.disk_gb,
                    "disk_type": "pd-balanced"}],
            network_interfaces=[{"subnetwork": args.subnetwork_id, "access_configs": [{"network_tier": "PREMIUM"}]}],
            service_account={"email": self.account.email,
                             "scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
            metadata={
                "startup-script": STARTUP_SCRIPT,
                GCE_IMAGE_METADATA_KEY: args.image,
                "block-project-ssh-keys": "true",
                "enable-oslogin": "TRUE",
            },
            tags=[BOT_TAG],
            labels={"role": "bot"},
            scheduling={
                "provisioning_model": "STANDARD",
                "automatic_restart": False,  # a restarted VM would rejoin a finished session
                "on_host_maintenance": "MIGRATE",
                "instance_termination_action": "DELETE",
                "max_run_duration": {"seconds": args.max_session_seconds + GCE_BOOT_GRACE_SECONDS},
            },
            shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True,
                                      "enable_integrity_monitoring": True},
            opts=child,
        )
        self.template_path = pulumi.Output.concat("projects/", args.project, "/global/instanceTemplates/",
                                                  template.name)
        self.service_account_email = self.account.email
        self.register_outputs({"template_path": self.template_path,
                               "service_account_email": self.service_account_email})

    def grant_launch(self, grantee: str, member: pulumi.Output[str]) -> None:
        """Let `member` create bot VMs from this template (and act as the bot account only)."""
        role = gcp.projects.IAMCustomRole(
            f"{self._name}-launcher",
            project=self._project,
            role_id=f"{self._name}_launcher".replace("-", "_"),
            title="voicefleet bot launcher",
            description="Create, watch and delete voicefleet bot VMs from the instance template",
            permissions=list(LAUNCH_PERMISSIONS),
            opts=pulumi.ResourceOptions(parent=self),
        )
        gcp.projects.IAMMember(f"{self._name}-launcher-{grantee}", project=self._project, role=role.name,
                               member=member, opts=pulumi.ResourceOptions(parent=self))
        gcp.serviceaccount.IAMMember(f"{self._name}-act-as-{grantee}", service_account_id=self.account.name,
                                     role="roles/iam.serviceAccountUser", member=member,
                                     opts=pulumi.ResourceOptions(parent=self))
