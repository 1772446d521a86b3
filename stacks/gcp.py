"""GcpStack: one environment of voicefleet on GCP.

APIs -> Artifact Registry -> images pinned by digest -> egress-only network -> bot instance
template (one VM per session) -> Cloud Run dispatcher that may create VMs from that template and
nothing more. Every child gets the explicit, default-labelled provider through its parent.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from images.component import Images, ImagesArgs, RegistryAuth
from stacks import contract
from stacks.config.bot import image_args
from stacks.config.channel import channel_lifetime_seconds, channel_secrets, channel_url, cloud_run_concurrency
from stacks.config.secrets import stored_secrets
from stacks.config.settings import Settings
from stacks.config.turn import TURN_SECRET_ORDER, turn_secrets
from stacks.gcp_bot import BotTemplate, BotTemplateArgs
from stacks.gcp_dispatcher import Dispatcher, DispatcherArgs
from stacks.gcp_network import Network, NetworkArgs
from stacks.gcp_secrets import SecretStore, SecretStoreArgs
from stacks.gcp_store import CoordinationStore, CoordinationStoreArgs
from stacks.gcp_turn import TurnRelay, TurnRelayArgs

APIS = ("artifactregistry", "compute", "iam", "logging", "run", "secretmanager")


def instance_prefix(stack: str) -> str:
    """GCE_INSTANCE_PREFIX: `vf-<stack>-` (≤ 24 characters; the dispatcher allows 31), so VMs are
    `vf-<stack>--<id>`. Per stack, so stacks sharing a project never reap each other's VMs, and the
    IAM conditions can name them: stack names hold no "--", so no other stack's VM name (say of
    `<stack>-eu`, `vf-<stack>-eu--…`) starts with `vf-<stack>--`."""
    return f"vf-{stack}-"


def dispatcher_service_name(prefix: str) -> str:
    return f"{prefix}-dispatcher"


def account_id(stack: str, role: str) -> str:
    """Service account ids are 6-30 characters: short project prefix, the stack, the role."""
    return f"vf-{stack}-{role}"[:30].rstrip("-")


class GcpStack(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        assert settings.gcp is not None
        cfg = settings.gcp
        provider = gcp.Provider(name, project=cfg.project, region=cfg.region, default_labels=dict(settings.tags))
        super().__init__("voicefleet:gcp:GcpStack", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        child = pulumi.ResourceOptions(parent=self)
        prefix = settings.prefix

        # Leaving APIs on at destroy: other stacks in the project may use them.
        apis = [gcp.projects.Service(f"{name}-{api}", project=cfg.project, service=f"{api}.googleapis.com",
                                     disable_on_destroy=False, opts=child) for api in APIS]
        after_apis = pulumi.ResourceOptions(parent=self, depends_on=apis)

        registry = gcp.artifactregistry.Repository(
            name,
            repository_id=prefix,
            location=cfg.region,
            format="DOCKER",
            description="voicefleet images (pinned by digest)",
            cleanup_policies=[
                {"id": "keep-recent", "action": "KEEP",
                 "most_recent_versions": {"keep_count": settings.image_retention_count}},
                {"id": "drop-untagged", "action": "DELETE",
                 "condition": {"tag_state": "UNTAGGED", "older_than": "86400s"}},
            ],
            opts=pulumi.ResourceOptions.merge(after_apis, pulumi.ResourceOptions(protect=settings.protect)),
        )
        host = f"{cfg.region}-docker.pkg.dev"
        base = pulumi.Output.concat(host, "/", cfg.project, "/", registry.repository_id)
        roles = ("bot", "dispatcher", *(("bot-webrtc",) if settings.turn else ()))
        client = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        images = Images(name, ImagesArgs(
            registry=RegistryAuth(address=host, username="oauth2accesstoken", password=client.access_token),
            repositories={role: pulumi.Output.concat(base, "/", role) for role in roles},
            **image_args(settings),
        ), opts=child)

        network = Network(name, NetworkArgs(region=cfg.region, cidr=cfg.subnet_cidr, depends_on=apis), opts=child)
        secrets = SecretStore(name, SecretStoreArgs(
            prefix=prefix,
            values=stored_secrets(settings, store_password=False),  # Memorystore signs in with IAM
            protect=settings.protect,
            depends_on=apis,
        ), opts=child)
        bot_channel_url = self._channel_url(settings) if channel_secrets(settings) else None
        bot = BotTemplate(f"{name}-bot", BotTemplateArgs(
            project=cfg.project,
            prefix=prefix,
            account_id=account_id(settings.stack, "bot"),
            image=images.bot,
            subnetwork_id=network.subnetwork_id,
            repository_id=registry.repository_id,
            region=cfg.region,
            zone=cfg.zone,
            instance_prefix=instance_prefix(settings.stack),
            machine_type=cfg.bot_machine_type,
            disk_gb=cfg.bot_disk_gb,
            max_session_seconds=settings.max_session_seconds,
            secrets=secrets,
            # Not the channel's deployment secret: each bot gets its own machine credential at launch.
            secret_names=tuple(sorted(settings.secrets.bot)),
            webrtc_image=images.bot_webrtc,
            channel_url=bot_channel_url,
        ), opts=after_apis)

        turn_urls: pulumi.Input[list[str]] | None = None
        if settings.turn is not None and settings.turn.mode == "managed":
            relay = TurnRelay(f"{name}-turn", TurnRelayArgs(
                turn=settings.turn, project=cfg.project, region=cfg.region, zone=cfg.zone,
                account_id=account_id(settings.stack, "turn"), network_id=network.network_id,
                subnetwork_id=network.subnetwork_id, secrets=secrets,
                secret_names=sorted(turn_secrets(settings), key=TURN_SECRET_ORDER.index)), opts=after_apis)
            turn_urls = relay.urls
        elif settings.turn is not None:
            turn_urls = list(settings.turn.external_urls)

        account = gcp.serviceaccount.Account(f"{name}-dispatcher", account_id=account_id(settings.stack, "dispatcher"),
                                             display_name="voicefleet dispatcher", opts=after_apis)
        member = pulumi.Output.concat("serviceAccount:", account.email)
        launch_grants = bot.grant_launch("dispatcher", member)
        dispatcher_secrets = contract.dispatcher_secrets(
            turn=turn_urls is not None, channel=bot_channel_url is not None, store_password=False,
            phone=sorted(settings.secrets.phone))
        readable = secrets.grant_access("dispatcher", member, dispatcher_secrets)
        store = None
        if cfg.store:  # several instances share it (docs/replicas.md)
            prod = settings.environment == "prod"
            store = CoordinationStore(f"{name}-store", CoordinationStoreArgs(
                instance_id=f"{prefix}-kv", region=cfg.region, project=cfg.project, network_id=network.network_id,
                subnetwork_id=network.subnetwork_id, dispatcher_member=member,
                node_type="STANDARD_SMALL" if prod else "SHARED_CORE_NANO", replicas=1 if prod else 0,
                protect=settings.protect), opts=after_apis)
        dispatcher = Dispatcher(f"{name}-dispatcher", DispatcherArgs(
            service_name=dispatcher_service_name(prefix),
            project=cfg.project,
            region=cfg.region,
            zone=cfg.zone,
            image=images.dispatcher,
            service_account_email=account.email,
            instance_template=bot.template_path,
            instance_prefix=instance_prefix(settings.stack),
            secrets=secrets,
            # Cloud Run fails a revision whose identity cannot yet read its secrets (review item 7), and
            # the dispatcher launches reserve VMs at once: it waits for every grant it and the VMs need.
            depends_on=(*readable, *(secrets.versions[env] for env in dispatcher_secrets), *launch_grants,
                        *bot.grants, *([store.grant] if store is not None else [])),
            reserve=settings.reserve,
            turn_urls=turn_urls,
            **({"turn_credentials_per_key": settings.turn.credentials_per_key} if settings.turn is not None else {}),
            channel_url=bot_channel_url,
            # A bot's channel is one request to Cloud Run: it must outlive an idle bot plus its session.
            **({"request_timeout_seconds": channel_lifetime_seconds(settings)} if bot_channel_url is not None else {}),
            request_concurrency=cloud_run_concurrency(settings),
            memory_mib=settings.dispatcher_memory,
            min_instances=cfg.dispatcher_min_instances,
            max_instances=cfg.dispatcher_max_instances,
            store_url=store.url if store is not None else None,
            phone_secret_names=tuple(sorted(settings.secrets.phone)),
            store_ca=store.ca_certificate if store is not None else None,
            network_id=network.network_id if store is not None else None,
            subnetwork_id=network.subnetwork_id if store is not None else None,
            max_concurrent_sessions=settings.max_concurrent_sessions,
            max_session_seconds=settings.max_session_seconds,
            deletion_protection=settings.protect,
            drain=settings.drain,
        ), opts=after_apis)

        self.outputs = {
            "cloud": "gcp",
            "project": cfg.project,
            "region": cfg.region,
            "zone": cfg.zone,
            "dispatcherUrl": dispatcher.url,
            "dispatcherService": dispatcher.service_name,
            "botImage": images.bot,
            "dispatcherImage": images.dispatcher,
            "botInstanceTemplate": bot.template_path,
            "botServiceAccount": bot.service_account_email,
            "dispatcherServiceAccount": account.email,
            "secretIds": secrets.ids,
            "machinesEnvironment": dispatcher.machines_environment,
            "drained": settings.drain,
            **({"turnUrls": turn_urls} if turn_urls is not None else {}),
            **({"botChannelUrl": bot_channel_url} if bot_channel_url is not None else {}),
        }
        self.register_outputs(self.outputs)

    def _channel_url(self, settings: Settings) -> pulumi.Output[str]:
        """wss:// on the dispatcher's deterministic Cloud Run URL, SERVICE-PROJECTNUMBER.REGION.run.app
        (https://cloud.google.com/run/docs/triggering/https-request#deterministic): known before the
        service exists, so the bot template, which the service's own environment names, can carry it."""
        assert settings.gcp is not None
        project = gcp.organizations.get_project_output(project_id=settings.gcp.project,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))
        host = pulumi.Output.concat(dispatcher_service_name(settings.prefix), "-", project.number, ".",
                                    settings.gcp.region, ".run.app")
        return channel_url(host)
