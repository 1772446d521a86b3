"""Dispatcher on Cloud Run: HTTP only (bots, which need UDP, are VMs; see docs/design.md §1).

Public endpoint (`invoker_iam_disabled`): callers authenticate with the dispatcher's own API keys.
Cloud Run sets PORT from the container port itself, so it is not in `envs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import pulumi
import pulumi_gcp.cloudrunv2 as gcp_cloudrunv2

from botchannel.contract import CHANNEL_URL_VARIABLE
from stacks.config.channel import CLOUD_RUN_VCPUS
from stacks.config.observability import ObservabilitySettings
from stacks.config.releases import VARIABLE as RELEASES_VARIABLE
from stacks.config.sip_edge import URL_VARIABLE
from stacks.gcp.secrets import SecretStore
from stacks.shared import contract, turn_server


@dataclass(frozen=True)
class DispatcherArgs:
    service_name: str  # a DNS label under 50 characters (explicit: an auto-name adds 8)
    region: str
    image: pulumi.Input[str]  # digest-pinned
    service_account_email: pulumi.Input[str]
    instance_template: pulumi.Input[str]  # the current release's: the provider's default
    instance_prefix: str
    secrets: SecretStore
    memory_mib: int
    min_instances: int
    max_instances: int
    deletion_protection: bool
    # The settings the stack's keys set (stacks/config/dispatcher_keys.py plain_environment): sessions,
    # the reserve, with botRuntime gce the zone and the bots' machine type (their price), …
    key_settings: Mapping[str, str]
    # What it takes by reference (stacks/config/secrets.py dispatcher_secret_names), in Secret Manager.
    secret_names: tuple[str, ...]
    metric_lines: Mapping[str, str]  # METRIC_LINES and its namespace (observability.py)
    depends_on: tuple[pulumi.Resource, ...] = ()
    drain: bool = False  # before a destroy: no dispatcher instance
    turn_urls: pulumi.Input[Sequence[str]] | None = None  # a TURN relay: cloud SmallWebRTC sessions
    turn_transports: tuple[str, ...] = ("daily", "webrtc")  # with turn_urls: the web sessions offered, default first
    channel_url: pulumi.Input[str] | None = None  # the bot control channel: the URL bots dial
    # Longer than the longest request: `POST /start?wait=started` blocks up to 30 s; with the
    # channel, a bot's WebSocket (stacks/config/channel.py channel_lifetime_seconds).
    request_timeout_seconds: int = 120
    # With the channel, every session holds up to three (stacks/config/channel.py cloud_run_concurrency).
    request_concurrency: int = 80
    # Several instances: their coordination store (stacks/gcp/store.py), reached through the VPC.
    store_url: pulumi.Input[str] | None = None
    # JSON logs (stacks/config/observability.py).
    observability: ObservabilitySettings = ObservabilitySettings()
    regions: bool = False  # several regions (stacks/config/regions.py): the front door asks if it is ready
    store_ca: pulumi.Input[str] | None = None
    # Direct VPC egress (private ranges only) into this network: the store's endpoints, the SIP edge's control API.
    network_id: pulumi.Input[str] | None = None
    subnetwork_id: pulumi.Input[str] | None = None
    # A SIP edge that places calls (stacks/gcp/sip_edge.py): its control API on its internal address.
    sip_edge_url: pulumi.Input[str] | None = None
    # botRuntime cloudrun: the `cloudrun` provider's variables (stacks/gcp/bot_job.py) instead of the GCE_* ones
    cloudrun: Mapping[str, pulumi.Input[str]] | None = None
    releases: pulumi.Input[str] | None = None  # RELEASES: the kept releases and what each launches
    # Recording on: RECORDING_DESTINATION (stacks/config/recording.py), the bucket's grants among depends_on.
    recording: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def environment(args: DispatcherArgs) -> dict[str, pulumi.Input[str]]:
    """The `gce` (or, botRuntime cloudrun, `cloudrun`) machines provider's environment
    (stacks/shared/contract.py names every key)."""
    machines: dict[str, pulumi.Input[str]] = {**contract.serving_environment("cloudrun", port=False), **args.cloudrun} \
        if args.cloudrun is not None else {**contract.serving_environment("gce", port=False),
                                           "GCE_INSTANCE_TEMPLATE": args.instance_template,
                                           "GCE_INSTANCE_PREFIX": args.instance_prefix}
    return {
        **args.key_settings,
        **machines,
        **({RELEASES_VARIABLE: args.releases} if args.releases is not None else {}),
        **args.metric_lines,
        **(turn_server.dispatcher_environment(args.turn_urls, args.turn_transports)
           if args.turn_urls is not None else {}),
        # A job has one container, the SmallWebRTC bot with a relay (stacks/gcp/stack.py): no Daily in it.
        **({"TRANSPORTS": "webrtc", "DEFAULT_TRANSPORT": "webrtc"}
           if args.turn_urls is not None and args.cloudrun is not None else {}),
        **({CHANNEL_URL_VARIABLE: args.channel_url} if args.channel_url is not None else {}),
        **(store_environment(args) if args.store_url is not None else {}),
        **args.observability.dispatcher_environment(),
        **args.recording,
        **({URL_VARIABLE: args.sip_edge_url} if args.sip_edge_url is not None else {}),
    }


def store_environment(args: DispatcherArgs) -> dict[str, pulumi.Input[str]]:
    """Memorystore: TLS checked against the instance's own CA, IAM sign-in with the service's account."""
    assert args.store_url is not None and args.store_ca is not None
    return {"REDIS_URL": args.store_url, "REDIS_AUTH": "gcp-iam", "REDIS_CA_CERT": args.store_ca}


def service_scaling(drain: bool) -> gcp_cloudrunv2.ServiceScalingArgsDict:
    """The service-level scaling mode; the instance counts stay the template's (min/max)."""
    if drain:
        return {"scaling_mode": "MANUAL", "manual_instance_count": 0}
    return {"scaling_mode": "AUTOMATIC"}


class Dispatcher(pulumi.ComponentResource):
    url: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: DispatcherArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:Dispatcher", name, None, opts)
        env = environment(args)
        self.machines_environment = contract.machines_environment(dict(env))  # what stacks/tools/drain.py needs
        health = {"http_get": {"path": "/healthz", "port": contract.DISPATCHER_PORT}}
        service = gcp_cloudrunv2.Service(
            name,
            name=args.service_name,
            location=args.region,
            ingress="INGRESS_TRAFFIC_ALL",
            invoker_iam_disabled=True,
            deletion_protection=args.deletion_protection,
            # Drained (before a destroy): manual scaling with no instance, so nothing launches bots.
            # Always sent, AUTOMATIC when not drained: the provider's service-level `scaling` is
            # Optional + Computed (terraform-provider-google resource_cloud_run_v2_service.go), so a
            # block left out keeps what the state holds, and `drain: false` would leave MANUAL/0.
            scaling=service_scaling(args.drain),
            template=cast(gcp_cloudrunv2.ServiceTemplateArgsDict, {
                "service_account": args.service_account_email,
                "scaling": {"min_instance_count": args.min_instances, "max_instance_count": args.max_instances},
                "max_instance_request_concurrency": args.request_concurrency,
                # Direct VPC egress to the store's private endpoint and the SIP edge; the internet stays direct.
                **({"vpc_access": {"network_interfaces": [{"network": args.network_id,
                                                           "subnetwork": args.subnetwork_id}],
                                   "egress": "PRIVATE_RANGES_ONLY"}} if args.network_id is not None else {}),
                "timeout": f"{args.request_timeout_seconds}s",
                "containers": [{
                    "name": contract.DISPATCHER_CONTAINER_NAME,
                    "image": args.image,
                    "ports": {"container_port": contract.DISPATCHER_PORT},
                    "envs": [{"name": key, "value": env[key]} for key in sorted(env)]
                    + args.secrets.env(args.secret_names),  # Cloud Run secretKeyRef
                    # Billing follows the scaling choice (review item 10): scaled to zero, CPU only
                    # during requests (request-based billing); kept warm (min ≥ 1), CPU always, so
                    # the background reaper keeps running between requests (instance-based).
                    "resources": {"limits": {"cpu": str(CLOUD_RUN_VCPUS), "memory": f"{args.memory_mib}Mi"},
                                  "cpu_idle": args.min_instances == 0},
                    "startup_probe": {**health, "period_seconds": 2, "failure_threshold": 15},
                    "liveness_probe": {**health, "period_seconds": 15},
                    # Several regions: the front door's load balancer sends a region no request while
                    # its instances are not ready (Cloud Run service health: docs/regions.md, "Front door").
                    **({"readiness_probe": {**health, "period_seconds": 5, "failure_threshold": 3}}
                       if args.regions else {}),
                }],
            }),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.url = service.uri
        self.service_name = service.name
        self.register_outputs({"url": self.url, "service_name": self.service_name})
