"""What the dispatcher's machines providers read from their environment: the one place it is written.

Another module implements each provider against these names (dispatcher/machines/ecs/provider.py, gce.py);
the Pulumi components build the dispatcher's environment from these tuples, and a test asserts the
deployed environment's keys equal them, so a rename on either side fails a test instead of a
deploy.
"""

from __future__ import annotations

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE
from dispatcher.machines import bot_environment as bot_contract
from dispatcher.regions.config import ACCEPTED_SECRET_VARIABLE as REGION_ACCEPTED_SECRET_VARIABLE
from dispatcher.reserve.policy import ReserveSettings
from stacks.config.store import ACCEPTED_MESSAGE_SECRET_VARIABLE
from stacks.config.whatsapp import SECRET_KEYS as WHATSAPP_SECRET_KEYS

# Read by dispatcher/settings.py in every mode.
COMMON_ENV: tuple[str, ...] = (
    "MACHINES",
    "MAX_CONCURRENT_SESSIONS",
    "MAX_SESSION_SECONDS",
    "PORT",
    "HOST",
)

# Passed by reference only (Secrets Manager `valueFrom`, Secret Manager `secret_key_ref`).
# DISPATCHER_ADMIN_KEYS: the admin surface's (/releases), the dispatcher's alone, never a bot's.
DISPATCHER_SECRETS: tuple[str, ...] = ("DAILY_API_KEY", "DISPATCHER_API_KEYS", "DISPATCHER_ADMIN_KEYS")

# The warm reserve's sizing (dispatcher/reserve/policy.py), in every cloud mode; written from the
# parsed settings (ReserveSettings.to_env), so these are its keys. The schedule only when one is set.
RESERVE_ENV: tuple[str, ...] = tuple(ReserveSettings().to_env())
RESERVE_SCHEDULE_ENV: tuple[str, ...] = ("RESERVE_SCHEDULE",)

# The registry as log lines for the cloud's metrics (dispatcher/observability/metric_lines.py): every stack sets
# them (stacks/aws/observability.py, stacks/gcp/observability.py).
METRIC_LINES_ENV: tuple[str, ...] = ("METRIC_LINES", "METRIC_NAMESPACE")

# JSON log lines (dispatcher/observability/log_format.py, bot/log_format.py), on the dispatcher and the bots in
# every stack (stacks/config/observability.py); the trace collector and the webhook receiver when
# the stack config names them.
LOG_ENV: tuple[str, ...] = ("LOG_FORMAT",)
OTLP_ENV: tuple[str, ...] = ("OTEL_EXPORTER_OTLP_ENDPOINT",)
OTLP_SECRETS: tuple[str, ...] = ("OTEL_EXPORTER_OTLP_HEADERS",)
WEBHOOK_ENV: tuple[str, ...] = ("WEBHOOK_URL",)
WEBHOOK_SECRETS: tuple[str, ...] = ("WEBHOOK_SECRET",)
# GET /dashboard (dispatcher/api/status_view.py), set only with `dashboardEnabled`: unset, a cloud dispatcher serves
# no page, so a stack without the key keeps the environment (and the revision) it had.
DASHBOARD_ENV: tuple[str, ...] = ("DASHBOARD_ENABLED",)
# The stack's profile (stacks/config/derived.py), set only with `profile: prod`: `dev` is the
# dispatcher's default, so a dev stack keeps the environment (and the revision) it had.
PROFILE_ENV: tuple[str, ...] = ("VOICEFLEET_PROFILE",)
# Secrets a stack is meant to drop again: the accepted message secret (step 3 of the rotation in
# docs/pulumi.md removes it), the regions' accepted secret (likewise, docs/regions.md) and the
# optional observability ones, and WhatsApp's (credentials Meta reissues, not state: turning WhatsApp off
# removes them). Never `protect`ed: Pulumi refuses
# any deployment that would delete a protected resource ("Resource option: protect"), so removing
# the key would fail `up`. Deleted, an AWS secret stays recoverable for its recovery window; a
# Google Secret Manager secret's versions go at once. On Azure they are not deleted but hold a
# placeholder while unset (stacks/azure/secrets.py: a deleted name stays taken for the vault's retention).
REMOVABLE_SECRETS: tuple[str, ...] = (ACCEPTED_MESSAGE_SECRET_VARIABLE, *OTLP_SECRETS, *WEBHOOK_SECRETS,
                                      REGION_ACCEPTED_SECRET_VARIABLE, *WHATSAPP_SECRET_KEYS.values())
# And the SIP edge's (stacks/config/sip_edge.py: SIP_EDGE_API_KEY_<name>, SIP_EDGE_DIGEST_<trunk>,
# SIP_EDGE_SECRET and the edge's SIP_EDGE_CREDENTIAL and SIP_EDGE_CONTROL_KEY), copies of other keys or
# made by the stack: removing a trunk, re-mapping a number or turning the edge off deletes them.
REMOVABLE_SECRET_PREFIXES: tuple[str, ...] = ("SIP_EDGE_",)


def removable_secret(env_name: str) -> bool:
    """A secret the stack may delete again, so never `protect`ed (REMOVABLE_SECRETS)."""
    return env_name in REMOVABLE_SECRETS or env_name.startswith(REMOVABLE_SECRET_PREFIXES)

# The releases a stack keeps and a new one's first share (stacks/config/releases.py): JSON, each
# release's reference per transport (ECS: a task definition ARN with its revision; GCE an instance
# template, Cloud Run a job, ACI an image by digest).
RELEASES_ENV: tuple[str, ...] = ("RELEASES",)

# `MACHINES=ecs`: dispatcher/machines/ecs/provider.py.
ECS_ENV: tuple[str, ...] = (
    *COMMON_ENV,
    *RESERVE_ENV,
    *METRIC_LINES_ENV,
    *LOG_ENV,
    "AWS_REGION",
    "ECS_CLUSTER",  # cluster name or ARN
    "ECS_TASK_DEFINITION",  # the bot *family* (listing, reaping); each release names its revision in RELEASES
    "ECS_CONTAINER_NAME",  # `bot`; containerOverrides address it by name
    "ECS_SUBNETS",  # comma-separated subnet ids
    "ECS_SECURITY_GROUPS",  # comma-separated security group ids
    "ECS_ASSIGN_PUBLIC_IP",  # ENABLED: bots sit in public subnets, no NAT
    "ECS_CAPACITY_PROVIDERS",  # "FARGATE" or "FARGATE_SPOT:1,FARGATE:1" (provider:weight)
    "KEEP_ALIVE_SECONDS",  # uvicorn keep-alive; must exceed the ALB idle timeout
    "ECS_TASK_VCPU", "ECS_TASK_MEMORY_GB",  # the bot task's size: the reserve's hot-tier price in /metrics
    *RELEASES_ENV,
)

# `MACHINES=gce`: dispatcher/machines/gce/provider.py.
GCE_ENV: tuple[str, ...] = (
    *COMMON_ENV,
    *RESERVE_ENV,
    *METRIC_LINES_ENV,
    *LOG_ENV,
    "GCE_PROJECT",
    "GCE_ZONE",
    "GCE_INSTANCE_TEMPLATE",  # projects/P/global/instanceTemplates/NAME
    "GCE_INSTANCE_PREFIX",  # per stack: VM names, the launcher's IAM condition, the reaper's scope
    "GCE_MACHINE_TYPE",  # the bot template's: the reserve's hot-tier price in /metrics
    *RELEASES_ENV,  # a template per release (stacks/gcp/releases.py)
)

# `MACHINES=aci`: the Azure Container Instances provider (dispatcher/machines/aci/). The names are
# written in one place for the stack, stacks/azure/machines.py `aci_environment`, which maps the
# stack's values onto them: adjust both together if the provider reads other names.
ACI_ENV: tuple[str, ...] = (
    *COMMON_ENV,
    *RESERVE_ENV,
    *METRIC_LINES_ENV,
    *LOG_ENV,
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_RESOURCE_GROUP",  # the one group the dispatcher may create container groups in
    "AZURE_LOCATION",
    "AZURE_CLIENT_ID",  # the dispatcher's user-assigned identity (azure-identity's ManagedIdentityCredential)
    "ACI_BOT_IMAGE",  # digest-pinned
    "ACI_REGISTRY_IDENTITY",  # the bots' user-assigned identity (resource id): pulls the image, nothing more
    "ACI_REGISTRY_SERVER",  # the registry's login server, pulled from with ACI_REGISTRY_IDENTITY
    "ACI_SUBNET_ID",  # the bots' subnet: egress UDP + TCP 443 through the NAT gateway, no inbound
    "ACI_GROUP_PREFIX",  # per stack: container group names, the reaper's and the drain's scope
    "ACI_CPU", "ACI_MEMORY_GB",  # the bot container group's size (and the reserve's price)
    "ACI_BOT_SETTINGS",  # `KEY=value,…`: the bots' own plain settings (LOG_FORMAT, the trace collector)
    *RELEASES_ENV,  # each release's images by digest (stacks/azure/stack.py)
)
# With a TURN relay on ACI: the SmallWebRTC bot's image, for `webrtc` sessions (docs/images.md).
ACI_WEBRTC_ENV: tuple[str, ...] = ("ACI_BOT_IMAGE_WEBRTC",)
# With bot secrets on ACI: `ENV=<versioned Key Vault secret URI>,…`, references the dispatcher reads with
# its identity and hands each container group as secure environment values (never plain ones).
ACI_BOT_SECRETS_ENV: tuple[str, ...] = ("ACI_BOT_SECRETS",)

# `MACHINES=k8s`: dispatcher/machines/k8s/settings.py, in a Pod of the cluster (the API server's address,
# the token and the CA come from the kubelet). Written in one place for the stack, stacks/k8s/stack.py
# `k8s_environment`. No METRIC_LINES: a cluster's Prometheus scrapes /metrics.
K8S_ENV: tuple[str, ...] = (
    *COMMON_ENV,
    *RESERVE_ENV,
    *LOG_ENV,
    "K8S_NAMESPACE",  # the bots' namespace, the only one the dispatcher's Role reaches
    "BOT_IMAGE",  # by digest
    "K8S_BOT_CPU", "K8S_BOT_MEMORY",  # each bot's requests and limits (the bots' quota is counted from them)
    "K8S_SERVICE_ACCOUNT",  # the bots' ServiceAccount: the subject of each pod's projected identity token
    "BOT_CHANNEL_PORT",  # the bots' routes off the port the Ingress routes (DISPATCHER_CHANNEL_PORT)
)
# With k8sMode agent-sandbox: the mode, and the SandboxWarmPool the stack creates, which every claim names.
K8S_SANDBOX_ENV: tuple[str, ...] = ("K8S_MODE", "K8S_WARM_POOL", *RELEASES_ENV)  # a pool per release
# With `k8sChannelTls: stack` (the default): the channel port's certificate files (a mounted Secret's) and the
# ConfigMap of its CA every bot pod mounts (stacks/k8s/channel_tls.py).
K8S_CHANNEL_TLS_ENV: tuple[str, ...] = ("BOT_CHANNEL_TLS_CERT_FILE", "BOT_CHANNEL_TLS_KEY_FILE",
                                        "K8S_BOT_CHANNEL_CA_CONFIGMAP")
# With botSecrets or k8sBotSecret: the name of the Secret of the bots' keys, every bot pod's `envFrom`
# (stacks/k8s/bot_secret.py); the dispatcher never reads it.
K8S_BOT_SECRET_ENV: tuple[str, ...] = ("K8S_BOT_SECRET",)
# With k8sRuntimeClass: the bots' runtimeClassName.
K8S_RUNTIME_CLASS_ENV: tuple[str, ...] = ("K8S_RUNTIME_CLASS",)

# With a TURN relay (stacks/config/turn.py): cloud sessions may use SmallWebRTC; the dispatcher
# mints short-lived TURN credentials from the shared secret (dispatcher/media/turn.py) for each session.
TURN_ENV: tuple[str, ...] = ("TRANSPORTS", "DEFAULT_TRANSPORT", "TURN_URLS", "ICE_TRANSPORT_POLICY",
                             "TURN_CREDENTIALS_PER_KEY")
TURN_SECRETS: tuple[str, ...] = ("TURN_SHARED_SECRET",)
# ECS: the SmallWebRTC bot's task definition family (a second image; docs/images.md).
ECS_WEBRTC_ENV: tuple[str, ...] = ("ECS_TASK_DEFINITION_WEBRTC",)

# With the bot control channel (stacks/config/channel.py, `botChannelToken`): the dispatcher gets
# the URL its bots dial and the deployment secret; every bot gets the URL only: its own machine
# credential, derived from the secret, comes with its launch (dispatcher/bot_credentials.py).
CHANNEL_ENV: tuple[str, ...] = (CHANNEL_URL_VARIABLE,)
# ECS with the channel: the bots' task roles, whose STS sessions name the tasks bots prove in their
# hello (dispatcher/machines/ecs/identity.py), and each replica's channel and connection caps
# (stacks/config/channel_capacity.py).
ECS_CHANNEL_ENV: tuple[str, ...] = ("ECS_BOT_TASK_ROLE_ARNS", "BOT_CHANNEL_MAX_CONNECTIONS", "MAX_CONNECTIONS")
CHANNEL_SECRETS: tuple[str, ...] = (CHANNEL_TOKEN_VARIABLE,)
# With several regions (stacks/config/regions.py): this region's name and every region's URL, and
# the secret regions sign their requests to each other with, by reference only
# (dispatcher/regions/config.py VARIABLES; a test keeps them equal).
REGION_ENV: tuple[str, ...] = ("REGION", "REGIONS")
REGION_SECRETS: tuple[str, ...] = ("REGION_SECRET",)
# And the planner's settings for leaning on neighbours (dispatcher/reserve/planner.py), with regions only.
REGION_PLANNER_ENV: tuple[str, ...] = ("REGION_SPILL_BUDGET_MS", "REGION_HOLD_FOR_NEIGHBOURS")
# Only while REGION_SECRET changes (docs/regions.md): its other secret, also by reference only
# (REGION_ACCEPTED_SECRET_VARIABLE, in REMOVABLE_SECRETS).
BOT_CHANNEL_ENV: tuple[str, ...] = (CHANNEL_URL_VARIABLE,)
BOT_CHANNEL_SECRETS: tuple[str, ...] = ()

# Cloud Run sets PORT itself (from the container port) and rejects it as a user variable.
CLOUD_RUN_RESERVED_ENV: frozenset[str] = frozenset({"PORT"})

DISPATCHER_PORT = 8080
# Kubernetes: the bots' routes (/bots/…) on a port of their own, which the Ingress never routes
# (the dispatcher's BOT_CHANNEL_PORT; dispatcher/api/channel_port.py).
DISPATCHER_CHANNEL_PORT = 8081
DISPATCHER_HOST = "0.0.0.0"  # inside a container; the ALB / Cloud Run front it
BOT_CONTAINER_NAME = "bot"
DISPATCHER_CONTAINER_NAME = "dispatcher"

# GCE bots: the dispatcher writes one session's values into the new instance's metadata; the
# startup script copies them into the bot container's env file (mode 0600), never a command line.
# metadata key -> environment variable the bot reads; written once, in the dispatcher's contract.
GCE_SESSION_METADATA: dict[str, str] = dict(bot_contract.GCE_SESSION_METADATA)
# A reserve VM's own values (its bot id, the image it reports): copied only when present.
GCE_RESERVE_METADATA: dict[str, str] = dict(bot_contract.GCE_RESERVE_METADATA)
# Set by Pulumi on the template (not per session): the digest-pinned image the script runs.
GCE_IMAGE_METADATA_KEY = "bot-image"
# Set by Pulumi on the template: `ENV=projects/P/secrets/S/versions/N,…`, references (never values)
# to the bot's provider keys; the startup script reads them with the VM's service account at boot.
GCE_SECRETS_METADATA_KEY = "bot-secrets"
# Set by Pulumi on the template with the channel: BOT_CHANNEL_URL, which the startup script writes
# into the bot's env file (the credential comes through `bot-secrets`, by reference).
GCE_CHANNEL_URL_METADATA_KEY = "bot-channel-url"
# Set by Pulumi on the template: the bots' own settings (`KEY=value,…`: LOG_FORMAT, the trace
# collector's endpoint), which the startup script writes into the bot's env file.
GCE_SETTINGS_METADATA_KEY = "bot-settings"
# Set by Pulumi on the template when TURN is on: the SmallWebRTC bot image, which the startup script
# runs for a session without a Daily room.
GCE_WEBRTC_IMAGE_METADATA_KEY = "bot-image-webrtc"

# What names the machines the dispatcher launched, exported as the stack output `machinesEnvironment`
# so that `python -m stacks.drain` lists and removes them with the dispatcher's own providers before
# a destroy (nothing secret: the providers take credentials from the operator's environment).
MACHINES_ENV: tuple[str, ...] = (
    "MACHINES", "AWS_REGION", "ECS_CLUSTER", "ECS_TASK_DEFINITION", "ECS_TASK_DEFINITION_WEBRTC", "ECS_SUBNETS",
    "ECS_SECURITY_GROUPS", "ECS_CONTAINER_NAME", "ECS_CELLS", "GCE_PROJECT", "GCE_ZONE", "GCE_INSTANCE_TEMPLATE",
    "GCE_INSTANCE_PREFIX", "GCE_CELLS", "CLOUDRUN_PROJECT", "CLOUDRUN_REGION", "CLOUDRUN_JOB", "CLOUDRUN_CELLS",
    "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_LOCATION", "ACI_GROUP_PREFIX", "ACI_CELLS",
    # Every listed release's reference: the Cloud Run provider lists each release's job's executions,
    # not only CLOUDRUN_JOB's (dispatcher/machines/cloudrun/provider.py `jobs`).
    *RELEASES_ENV,
)
# botRuntime cloudrun: the stack output naming every job a session may still run in, the listed
# releases' and the retiring ones' (stacks/shared/release_builds.py), which the drain sweeps besides.
BOT_JOBS_OUTPUT = "botJobs"


def serving_environment(machines: str, *, port: bool = True) -> dict[str, str]:
    """COMMON_ENV's own (the rest are stack keys' settings, stacks/config/dispatcher_keys.py): the machines
    provider and where the dispatcher listens; `port` False on Cloud Run, which sets PORT itself."""
    return {"MACHINES": machines, "HOST": DISPATCHER_HOST, **({"PORT": str(DISPATCHER_PORT)} if port else {})}


def machines_environment(env: dict[str, object]) -> dict[str, object]:
    return {key: env[key] for key in MACHINES_ENV if key in env}
