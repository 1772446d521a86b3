"""The stack's settings as types: what stacks/config/settings.py reads from config and every module consumes.

Kept apart from the loader so that the modules the loader calls (channel, reserve and TURN
settings) can name these types without importing the loader back (imports point one way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pulumi

from dispatcher.reserve.policy import ReserveSettings
from stacks.config.bot import BotProjectSettings
from stacks.config.bot_permissions import BotPermissions
from stacks.config.k8s_cells import StackCell
from stacks.config.k8s_model import ModelService
from stacks.config.k8s_registry import K8sRegistry
from stacks.config.observability import ObservabilitySettings
from stacks.config.recording import RecordingSettings
from stacks.config.regions import RegionSettings
from stacks.config.releases import ReleaseSettings
from stacks.config.sip_edge import SipEdgeSettings
from stacks.config.turn import TurnSettings


@dataclass(frozen=True)
class Secrets:
    """Secret config values; they stay Outputs so they only ever reach the secret stores."""

    daily_api_key: pulumi.Output[str]
    dispatcher_api_keys: pulumi.Output[str]
    # dispatcherAdminKeys (stacks/config/admin_keys.py): DISPATCHER_ADMIN_KEYS, the admin surface's own.
    dispatcher_admin_keys: pulumi.Output[str]
    bot: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)  # env name -> value
    # BOT_CHANNEL_TOKEN (stacks/config/channel.py): None = no bot control channel, every start cold.
    bot_channel_token: pulumi.Output[str] | None = None
    # storePassword (stacks/config/store.py): the coordination store's, when replicas share one.
    store_password: pulumi.Output[str] | None = None
    # storePreviousPassword: the one it replaces, still accepted while a rotation deploys.
    store_previous_password: pulumi.Output[str] | None = None
    # storeMessageSecret: signs what the replicas send each other through the store (both clouds).
    store_message_secret: pulumi.Output[str] | None = None
    # storeAcceptedMessageSecret: during a change of that secret, the other one (opened, never sealed with).
    store_accepted_message_secret: pulumi.Output[str] | None = None
    # The carriers' credentials for phone calls (stacks/config/phone.py), env name -> value.
    phone: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    # The OTLP collector's headers and the webhook secret, when set (stacks/config/observability.py).
    observability: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    # regionSecret (stacks/config/regions.py): REGION_SECRET, with several regions only.
    region_secret: pulumi.Output[str] | None = None
    # regionAcceptedSecret: during a change of regionSecret, the other one (checked against, never signed with).
    region_accepted_secret: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class AwsSettings:
    region: str
    vpc_cidr: str
    az_count: int
    bot_cpu: int
    bot_memory: int
    dispatcher_cpu: int
    dispatcher_count: int
    store: bool  # several replicas: they share a coordination store (stacks/aws/store.py)
    store_ecpu_per_second: int  # its ECPU ceiling (stacks/config/store_capacity.py); 0 without a store
    store_data_gb: int  # its data cap, GB (stacks/config/store_ceiling.py)
    capacity_providers: str
    alb_idle_timeout_seconds: int
    keep_alive_seconds: int
    certificate_arn: str | None
    allow_plain_http: bool
    dispatcher_domain: str | None  # the name on certificateArn that points at the ALB
    allowed_cidrs: tuple[str, ...]
    container_insights: bool
    log_retention_days: int
    secret_recovery_days: int
    dispatcher_zone_id: str | None = None  # Route 53 hosted zone: the stack writes dispatcherDomain's record
    alarm_topic_arn: str | None = None  # the SNS topic alarms notify (stacks/config/alarms.py)
    ecs_cells: str = ""  # ECS_CELLS, as the dispatcher reads it ("": the stack's own account alone)
    # ecsCellBotTaskRoleArns: the cells' accounts' bots' task roles, which ECS_BOT_TASK_ROLE_ARNS lists too
    ecs_cell_bot_task_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class GcpSettings:
    project: str
    region: str
    zone: str
    subnet_cidr: str
    bot_machine_type: str
    bot_disk_gb: int
    dispatcher_min_instances: int
    dispatcher_max_instances: int
    store: bool = False  # several instances with the channel: Memorystore for Valkey (stacks/gcp/store.py)
    store_node_type: str = "SHARED_CORE_NANO"  # its node type (stacks/config/store_ceiling.py)
    alarm_channels: tuple[str, ...] = ()  # Cloud Monitoring notification channels (stacks/config/alarms.py)
    alert_policies: bool = False  # set once the log-based metrics exist (stacks/gcp/observability.py)
    bot_runtime: str = "gce"  # "gce": a VM per session; "cloudrun": a Cloud Run job execution per session
    cloud_run_cells: str = ""  # CLOUDRUN_CELLS, as the dispatcher reads it ("": the stack's own project alone)
    gce_cells: str = ""  # GCE_CELLS, as the dispatcher reads it ("": the stack's own project alone)


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str
    location: str
    vnet_cidr: str
    dispatcher_cpu: float  # Container Apps consumption: dispatcherMemory / 2048 (stacks/config/azure.py)
    dispatcher_min_replicas: int
    dispatcher_max_replicas: int
    store: bool  # several replicas: Azure Managed Redis (stacks/azure/store.py)
    bot_cpu: int  # the bots' container groups: 1024 = one core
    bot_memory: int  # MiB
    log_retention_days: int
    alarm_action_group_id: str | None = None  # the action group alerts notify (stacks/config/azure.py)
    key_vault_allowed_ips: tuple[str, ...] = ()  # addresses outside the network Key Vault answers too
    key_vault_retention_days: int = 90  # soft delete; fixed when the vault is created
    key_vault_purge_protection: bool = False  # once on, Azure never turns it off
    aci_cells: str = ""  # ACI_CELLS, as the dispatcher reads it ("": the stack's own resource group alone)
    store_sku: str = "Balanced_B0"  # the store's size (stacks/config/store_ceiling.py)


@dataclass(frozen=True)
class KubernetesSettings:
    """`cloud: k8s` (stacks/config/k8s.py): a cluster its owner already runs."""

    kubeconfig: pulumi.Output[str]  # secret: the provider instance's, never plain config
    context: str | None  # the kubeconfig's context; None: its current one
    cluster_identifier: str | None  # the context's cluster entry name: the provider is replaced only when it changes
    dispatcher_namespace: str
    bot_namespace: str  # Pod Security `restricted`, enforced; the ResourceQuota's
    ingress_namespace: str  # the Ingress controller's: the only namespace the dispatcher takes traffic from
    # by digest, built elsewhere; None when the stack builds them and pushes them to `registry`
    dispatcher_image: str | None
    bot_image: str | None
    dispatcher_replicas: int  # 2 at least
    dispatcher_cpu: str  # a quantity: requests and limits
    bot_cpu: str
    bot_memory: str
    bot_millicores: int  # bot_cpu, counted (the quota multiplies it)
    bot_mebibytes: int  # bot_memory, counted
    runtime_class: str | None  # the bots' runtimeClassName (gVisor, Kata)
    bot_egress_except: tuple[str, ...]  # public ranges the bots may not reach either (IPv4 CIDRs)
    dns_addresses: tuple[str, ...]  # where else the bots' resolver answers (NodeLocal DNSCache, Cloud DNS): port 53
    ingress_class: str
    dispatcher_host: str  # the Ingress's host: dispatcherUrl https://<it>
    tls_secret: str | None  # the host's certificate, a Secret in the dispatcher's namespace
    # secret: REDIS_URL, credentials inside; None with the in-cluster store (its URL is the stack's own)
    store_url: pulumi.Output[str] | None
    mode: str = "pods"  # K8S_MODE: bare pods, or claims on the stack's SandboxWarmPool (`agent-sandbox`)
    # agent-sandbox only: the controller's ServiceAccount (namespace, name) and the user name the API server
    # sees for the stack's kubeconfig, the two the admission policy lets write Sandboxes and templates.
    sandbox_controller: tuple[str, str] = ("agent-sandbox-system", "agent-sandbox-controller")
    deployer: str | None = None
    agent_sandbox: str = "adopt"  # agent-sandbox only: the cluster's own (`adopt`) or the stack's pinned release
    store: str = "external"  # `in-cluster`: the stack runs Valkey (stacks/k8s/store.py), storePassword its user's
    store_mebibytes: int = 1024  # the in-cluster store's volume
    # `stack`: the stack's CA signs the dispatcher's channel certificate, bots dial wss:// (stacks/k8s/channel_tls.py);
    # `istio-ambient`, `cilium`: a mesh encrypts the pods' traffic, bots dial ws:// (stacks/k8s/mesh.py).
    channel_tls: str = "stack"
    ingress_sources: tuple[str, ...] = ()  # CIDRs the dispatcher takes clients from beside the controller's pods
    registry: K8sRegistry | None = None  # `k8sRegistry`: the stack builds both images and pushes them there
    # `k8sBotSecret`: the team's own Secret in the bots' namespace, every bot's envFrom; None: the stack writes
    # one from botSecrets (stacks/k8s/bot_secret.py), or the bots get none
    bot_secret: str | None = None
    # `k8sModelImage`: the shared GPU model service the stack runs (stacks/k8s/model_service.py); None: none.
    model: ModelService | None = None
    # `k8sAllocatableCpu`: the CPU the nodes can give the bots, for the concurrency ceiling; None: not stated.
    allocatable_millicores: int | None = None
    # `k8sPodOverheadCpu`, `k8sPodOverheadMemory`: what runtime_class's Pod Overhead adds to each bot pod beside
    # bot_millicores and bot_mebibytes (millicores, MiB), counted in the quota and the ceiling.
    overhead: tuple[int, int] = (0, 0)
    # `k8sCells`: the clusters the bots' pods spread over (K8S_CELLS), each with the Secret its token and CA are
    # mounted from (stacks/config/k8s_cells.py); empty: the stack's own cluster alone runs them.
    cells: tuple[StackCell, ...] = ()

    @property
    def pod_millicores(self) -> int:
        """A bot pod's CPU as the scheduler and the ResourceQuota count it: its container's request (the
        dispatcher's K8S_BOT_CPU, dispatcher/machines/k8s/pods.py) plus the runtime class's Pod Overhead."""
        return self.bot_millicores + self.overhead[0]

    @property
    def pod_mebibytes(self) -> int:
        return self.bot_mebibytes + self.overhead[1]


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    cloud: str
    environment: str
    protect: bool  # prod: `protect` on stateful resources, deletion protection on
    max_concurrent_sessions: int
    max_session_seconds: int
    dispatcher_memory: int
    platforms: tuple[str, ...]
    build_on_preview: bool
    source_revision: str
    image_retention_count: int
    tags: Mapping[str, str]
    secrets: Secrets
    reserve: ReserveSettings = ReserveSettings()  # the dispatcher's warm reserve (stacks/config/reserve.py)
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None
    azure: AzureSettings | None = None
    kubernetes: KubernetesSettings | None = None
    turn: TurnSettings | None = None  # a TURN relay for cloud SmallWebRTC sessions
    sip_edge: SipEdgeSettings | None = None  # the SIP edge's host (AWS and GCP: stacks/config/sip_edge.py)
    # Before a destroy (docs/pulumi.md): no dispatcher runs, so nothing launches machines while
    # `python -m stacks.drain` removes the ones it launched.
    drain: bool = False
    bot_project: BotProjectSettings | None = None  # the bot image's project (voicefleet:botProject)
    # What the bot's own cloud identity may do (voicefleet:botPermissions, stacks/config/bot_permissions.py).
    bot_permissions: BotPermissions = BotPermissions()
    # JSON logs, and where traces and lifecycle webhooks go (stacks/config/observability.py).
    observability: ObservabilitySettings = ObservabilitySettings()
    # This region's name and every region's URL (stacks/config/regions.py); None: one region.
    regions: RegionSettings | None = None
    # Which release an `up` adds, how many stay listed, a new one's first share (stacks/config/releases.py).
    releases: ReleaseSettings = ReleaseSettings()
    # The recording bucket and its retention (stacks/config/recording.py); None: recording off, no bucket.
    recording: RecordingSettings | None = None
    # recordingRemoveStore: an `up` with recording off may take the last one's store out of the stack.
    recording_remove_store: bool = False
    # The dispatcher's feature switches that are on, setting -> "1" (stacks/config/switches.py).
    switches: Mapping[str, str] = field(default_factory=dict)
    # The plain phone settings that are set, variable -> value: WhatsApp's numbers (stacks/config/whatsapp.py),
    # Twilio's pace and the public URL its callbacks come back to (stacks/config/calling_out.py).
    phone: Mapping[str, str] = field(default_factory=dict)
    # The made secrets' rotation step, which the stack exports for the next `up` (stacks/config/rotation_last_up.py).
    secrets_rotation: Mapping[str, object] = field(default_factory=dict)
    # Resolved once the last `up`'s rotation step allows this one's: every cloud's provider waits for it.
    secrets_ready: pulumi.Output[object] | None = None
    # accountQuotas: the quota read the stack makes once its explicit provider exists (stacks/config/ceiling_notes.py).
    quota_read: Callable[[pulumi.InvokeOutputOptions], object] | None = None

    @property
    def prefix(self) -> str:
        """Base of every logical and physical name: stable per stack, unique per account."""
        return f"{self.project}-{self.stack}"

    @property
    def metric_namespace(self) -> str:
        """The dispatcher's metrics in this stack's cloud: `voicefleet/<stack>` (observability/metric_lines.py)."""
        return f"{self.project}/{self.stack}"
