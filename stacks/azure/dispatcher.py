"""Dispatcher on Azure Container Apps: HTTPS ingress, health probes, a drain on every deploy.

One workload-profiles environment (Consumption profile) in the stack's `dispatcher` subnet; the app
runs as the dispatcher's user-assigned identity, pulls its image with it (no registry password),
and reads its secrets from Key Vault with it (`secrets[].keyVaultUrl`, versioned, and a digest of
the versions in the template: a rotation rolls a revision). Ingress is external HTTPS only
(`allowInsecure` off); its name is `<app>.<environment's default domain>`, known before the app
exists, so bots' channel URL is too.

Probes on /healthz: startup (up to 30 s), liveness, readiness (a replica receives traffic only once
ready). The drain: a deploy replaces the single active revision, and Container Apps stops an old
replica with SIGTERM, then waits `terminationGracePeriodSeconds` before killing it; the dispatcher
finishes its sessions' relays in that time (docs/pulumi.md). Container Apps allows at most 600 s
(limits.CONTAINER_APPS_MAX_GRACE_SECONDS), so a call longer than that ends on a deploy, where ECS
waits the whole session (stacks/aws/dispatcher.py). `drain: true` before a destroy: no ingress and
no replica (nothing triggers a scale-out without ingress or a rule), so nothing launches bots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_azure_native.app as azure_app
import pulumi_azure_native.monitor as azure_monitor

from stacks.azure import naming
from stacks.azure.secrets import SecretStore
from stacks.config.limits import CONTAINER_APPS_MAX_GRACE_SECONDS
from stacks.shared import contract

PROBE_PATH = "/healthz"
# Container Apps secrets belong to the app, not the revision: a new Key Vault version alone starts no
# revision, and running replicas keep the old value. This variable (read by nobody) carries a digest of
# the versioned URIs, so a rotation is a revision-scope change and rolls the replicas (with the drain).
SECRETS_DIGEST_VARIABLE = "VOICEFLEET_SECRET_VERSIONS"


@dataclass(frozen=True)
class DispatcherArgs:
    app_name: str
    resource_group: pulumi.Input[str]
    location: str
    subnet_id: pulumi.Input[str]
    workspace_id: pulumi.Input[str]  # Log Analytics: the environment's console and system logs
    image: pulumi.Input[str]  # digest-pinned
    registry: pulumi.Input[str]  # login server
    identity_id: pulumi.Input[str]
    # Plain settings (stacks/shared/contract.py names them), given the app's public host name.
    environment: Callable[[pulumi.Output[str]], Mapping[str, pulumi.Input[str]]]
    secrets: SecretStore
    secret_names: tuple[str, ...]  # what the app reads from Key Vault, as environment variables
    cpu: float
    memory_mib: int
    min_replicas: int
    max_replicas: int
    max_session_seconds: int
    tags: dict[str, str]
    depends_on: tuple[pulumi.Resource, ...] = ()
    drain: bool = False


def grace_seconds(max_session_seconds: int) -> int:
    """How long an old replica keeps its sessions on a deploy: the longest session, as far as
    Container Apps allows."""
    return min(max_session_seconds + 60, CONTAINER_APPS_MAX_GRACE_SECONDS)


def probes() -> list[azure_app.ContainerAppProbeArgsDict]:
    get: azure_app.ContainerAppProbeHttpGetArgsDict = {"path": PROBE_PATH, "port": contract.DISPATCHER_PORT,
                                                       "scheme": "HTTP"}
    return [
        {"type": "Startup", "http_get": get, "period_seconds": 2, "failure_threshold": 15, "timeout_seconds": 2},
        {"type": "Liveness", "http_get": get, "period_seconds": 15, "failure_threshold": 3, "timeout_seconds": 5},
        {"type": "Readiness", "http_get": get, "period_seconds": 5, "failure_threshold": 3, "timeout_seconds": 3},
    ]


def memory(mib: int) -> str:
    return f"{mib / 1024:g}Gi"


class Dispatcher(pulumi.ComponentResource):
    url: pulumi.Output[str]
    environment: dict[str, pulumi.Input[str]]
    host: pulumi.Output[str]
    app_name: pulumi.Output[str]

    def __init__(self, name: str, args: DispatcherArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:Dispatcher", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        environment = azure_app.ManagedEnvironment(
            name,
            environment_name=f"{args.app_name}-env",
            resource_group_name=args.resource_group,
            location=args.location,
            workload_profiles=[{"name": "Consumption", "workload_profile_type": "Consumption"}],
            vnet_configuration={"infrastructure_subnet_id": args.subnet_id, "internal": False},
            # Logs go through a diagnostic setting below, not the workspace's shared key.
            app_logs_configuration={"destination": "azure-monitor"},
            tags=args.tags,
            opts=child,
        )
        azure_monitor.DiagnosticSetting(
            name,
            name="voicefleet-logs",
            resource_uri=environment.id,
            workspace_id=args.workspace_id,
            log_analytics_destination_type="Dedicated",
            logs=[{"category_group": "allLogs", "enabled": True}],
            opts=child,
        )
        self.host = pulumi.Output.concat(args.app_name, ".", environment.default_domain)
        self.environment = dict(args.environment(self.host))
        plain = [{"name": key, "value": value} for key, value in sorted(self.environment.items())]
        secret = [{"name": env, "secret_ref": naming.slug(env)} for env in sorted(args.secret_names)]
        uris = [args.secrets.uris[env] for env in sorted(args.secret_names)]
        digest = pulumi.Output.all(*uris).apply(
            lambda found: hashlib.sha256("\n".join(found).encode()).hexdigest()[:16])
        plain.append({"name": SECRETS_DIGEST_VARIABLE, "value": digest})
        app = azure_app.ContainerApp(
            name,
            container_app_name=args.app_name,
            resource_group_name=args.resource_group,
            location=args.location,
            managed_environment_id=environment.id,
            workload_profile_name="Consumption",
            identity={"type": "UserAssigned", "user_assigned_identities": [args.identity_id]},
            configuration=cast(azure_app.ConfigurationArgsDict, {
                "active_revisions_mode": "Single",
                **({} if args.drain else {"ingress": {
                    "external": True,
                    "target_port": contract.DISPATCHER_PORT,
                    "transport": "http",  # HTTP/1.1: WebSockets (the bots' channel, media) upgrade over it
                    "allow_insecure": False,
                    "traffic": [{"latest_revision": True, "weight": 100}],
                }}),
                "registries": [{"server": args.registry, "identity": args.identity_id}],
                "secrets": args.secrets.app_secrets(args.secret_names, args.identity_id),
            }),
            template=cast(azure_app.TemplateArgsDict, {
                "containers": [{
                    "name": contract.DISPATCHER_CONTAINER_NAME,
                    "image": args.image,
                    "env": plain + secret,
                    "resources": {"cpu": args.cpu, "memory": memory(args.memory_mib)},
                    "probes": probes(),
                }],
                "scale": ({"min_replicas": 0, "max_replicas": 1, "rules": []} if args.drain else
                          {"min_replicas": args.min_replicas, "max_replicas": args.max_replicas}),
                "termination_grace_period_seconds": grace_seconds(args.max_session_seconds),
            }),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.url = pulumi.Output.concat("https://", self.host)
        self.app_name = app.name
        self.register_outputs({"url": self.url})
