"""AwsStack: one environment of voicefleet on AWS, composed of the components beside it.

Registry (ECR, scan on push, lifecycle) -> images pinned by digest -> network (public subnets, bot
SG without ingress) -> secrets -> ECS cluster -> bot task definitions (RunTask targets) -> TURN
relay -> coordination store -> dispatcher service behind an ALB. Every child gets the explicit,
default-tagged provider through its parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pulumi
import pulumi_aws.ecs as aws_ecs
from pulumi_aws.get_caller_identity import get_caller_identity_output
from pulumi_aws.provider import Provider

from images.component import Images, ImagesArgs
from stacks.aws.balancer import BalancerArgs
from stacks.aws.bot_runtime import BotRuntime, BotRuntimeArgs
from stacks.aws.cell_task_definitions import note_unmapped
from stacks.aws.cluster import ecs_cluster
from stacks.aws.dispatcher import Dispatcher, DispatcherArgs
from stacks.aws.network import Network, NetworkArgs
from stacks.aws.observability import Observability, ObservabilityArgs, metric_environment
from stacks.aws.recordings import RecordingBucket
from stacks.aws.registry import Registry
from stacks.aws.relay import TurnRelay, TurnRelayArgs
from stacks.aws.secrets import SecretStore, SecretStoreArgs
from stacks.aws.sip_edge import SipEdge, SipEdgeArgs
from stacks.aws.store import CoordinationStore, CoordinationStoreArgs
from stacks.aws.task_definitions import deregister_command
from stacks.config import ecs_cells, rotation_last_up
from stacks.config.bot import image_args, web_transports
from stacks.config.bot_plain_env import bot_plain_environment
from stacks.config.channel import channel_secrets, channel_url
from stacks.config.dispatcher_keys import plain_environment
from stacks.config.model import Settings
from stacks.config.secrets import dispatcher_secret_names, stored_secrets
from stacks.config.sip_edge import SECRET_VARIABLE as SIP_EDGE_SECRET
from stacks.config.sip_edge import edge_outputs
from stacks.config.turn import TurnSettings, relay_secret_names
from stacks.shared import recording_last_up
from stacks.shared.contract import DISPATCHER_PORT
from stacks.shared.releases import listed
from stacks.shared.turn_server import turn_urls


class AwsStack(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        assert settings.aws is not None
        cfg = settings.aws
        # Nothing is made or changed before the last `up`'s recording store and secrets' rotation step rule out
        # a change they refuse.
        last_store = recording_last_up.checked(name, "aws", settings.recording, settings.recording_remove_store)
        checked = pulumi.Output.all(last_store, settings.secrets_ready)
        provider = Provider(name, region=checked.apply(lambda _: cfg.region),
                            default_tags={"tags": dict(settings.tags)})
        super().__init__("voicefleet:aws:AwsStack", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        child = pulumi.ResourceOptions(parent=self)
        self._name, self._settings, self._cfg = name, settings, cfg
        if settings.quota_read is not None:  # accountQuotas: through this provider (defaults are disabled)
            settings.quota_read(pulumi.InvokeOutputOptions(parent=self, provider=provider))
        self._bot_channel_url = self._channel_url()
        self._cell_bot_roles = self._admitted_cell_bot_roles(provider)

        registry = Registry(name, prefix=settings.prefix, roles=("bot", "dispatcher", *self._webrtc_roles()),
                            keep=settings.image_retention_count, protect=settings.protect, parent=self)
        # zstd bot layers: Fargate pulls the image for every task (images/component.py says why).
        images = Images(name, ImagesArgs(registry=registry.login(), repositories=registry.urls(),
                                         bot_compression="zstd", **image_args(settings)), opts=child)
        network = Network(name, NetworkArgs(cidr=cfg.vpc_cidr, az_count=cfg.az_count), opts=child)
        # The edge's address first: its credentials, in the secret store, are derived for its control URL.
        sip_edge = SipEdge(f"{name}-sip-edge", SipEdgeArgs(
            edge=settings.sip_edge, vpc_id=network.vpc_id, subnet_id=network.public_subnet_ids[0], region=cfg.region,
            protect=settings.protect), opts=child) if settings.sip_edge is not None else None
        self._stored = stored_secrets(settings, store=cfg.store, store_password=True,
                                      sip_edge_url=sip_edge.control_url if sip_edge is not None else None)
        secrets = SecretStore(name, SecretStoreArgs(
            path=f"/{settings.project}/{settings.stack}",
            values=self._stored,
            recovery_window_days=cfg.secret_recovery_days, protect=settings.protect), opts=child)
        cluster = ecs_cluster(name, physical_name=settings.prefix, container_insights=cfg.container_insights,
                              opts=child)
        # A project whose bot builds SmallWebRTC only has no Daily image: its runtime pulls the other one.
        bot_args = self._bot_args(images.bot, registry.arn("bot" if images.daily else "bot-webrtc"), secrets)
        bot = BotRuntime(f"{name}-bot", bot_args, opts=child)
        webrtc_bot = self._webrtc_bot(bot_args, images, registry)
        releases, current = self._releases(bot, webrtc_bot)
        # ECR keeps the newest releases' images by this tag (stacks/aws/registry.py).
        images.tag_release(current)
        turn_urls = self._turn_urls(network, secrets)
        store = self._store(network)
        recordings = RecordingBucket(f"{name}-recordings", settings.recording, bucket_prefix=f"{settings.prefix}-rec",
                                     opts=child) if settings.recording is not None else None
        dispatcher_args = self._dispatcher_args(
            images.dispatcher, registry.arn("dispatcher"), network, cluster, secrets, bot, webrtc_bot, turn_urls,
            store, releases)
        if sip_edge is not None:  # its status, transfers, calls out; the secret also vouches for a trunk's price
            dispatcher_args = replace(dispatcher_args, sip_edge_url=sip_edge.control_url,
                                      secret_names=(*dispatcher_args.secret_names, SIP_EDGE_SECRET))
        if recordings is not None and settings.recording is not None:
            dispatcher_args = replace(dispatcher_args, recording=settings.recording.environment(recordings.destination),
                                      recording_statements=recordings.statements(),
                                      recording_labels=recordings.dispatcher_labels,
                                      recording_waits_for=recordings.grant_waits_for)
        dispatcher = Dispatcher(f"{name}-dispatcher", dispatcher_args, opts=child)
        if cells := ecs_cells.listed(cfg.ecs_cells):  # what each cell's account must hold for the releases
            note_unmapped(cells=cells, releases=releases, stack_arn=bot.task_role.arn,
                          dispatcher_role=dispatcher.task_role_arn, region=cfg.region,
                          families=[runtime.family for runtime in (bot, webrtc_bot) if runtime is not None],
                          claim=self._bot_channel_url is not None, resource=self,
                          bot_permissions=settings.bot_permissions.aws_statements)
        if store is not None:
            store.allow_from(dispatcher.security_group_id)
        if sip_edge is not None:
            sip_edge.run(secrets=secrets, dispatcher_url=dispatcher.url,
                         dispatcher_security_group_id=dispatcher.security_group_id, image=images.dispatcher,
                         repository_arn=registry.arn("dispatcher"))
        observability = Observability(f"{name}-observability", ObservabilityArgs(
            prefix=settings.prefix, namespace=settings.metric_namespace, region=cfg.region,
            reserve=self._bot_channel_url is not None, store=store is not None,
            store_cache=store.cache_name if store is not None else None,
            store_data_gb=store.data_gb if store is not None else 1,
            alarm_topic_arn=cfg.alarm_topic_arn, sip_edge=sip_edge is not None,
            dispatcher_targets=dispatcher.target_group_dimensions, dispatcher_ready=[dispatcher.service],
            # Drained (before a destroy), no task is meant to answer: the dispatcher-down alarm is silenced.
            drained=settings.drain), opts=child)

        self.outputs = {
            "cloud": "aws",
            # Read back by the next `up` (stacks/config/rotation_last_up.py), once the dispatcher took this step.
            "secretsRotation": rotation_last_up.exported(settings.secrets_rotation, dispatcher.service_name),
            "region": cfg.region,
            "dispatcherUrl": dispatcher.url,
            "albDnsName": dispatcher.alb_dns_name,  # what dispatcherDomain's DNS record points at
            "botImage": images.bot,
            "dispatcherImage": images.dispatcher,
            "clusterName": cluster.name,
            "botTaskFamily": bot.family,
            # A destroy leaves the bot families' revisions ACTIVE (skip_destroy): what removes them.
            "deregisterTaskDefinitions": [deregister_command(runtime.family, cfg.region)
                                          for runtime in (bot, webrtc_bot) if runtime is not None],
            # The kept releases, read back by the next `up` (stacks/shared/releases.py): the dispatcher's RELEASES.
            "releases": releases,
            "botSecurityGroupId": network.bot_security_group_id,
            "subnetIds": network.public_subnet_ids,
            "botLogGroup": bot.log_group_name,
            "dispatcherLogGroup": dispatcher.log_group_name,
            "dispatcherService": dispatcher.service_name,
            "deregistrationDelaySeconds": dispatcher.deregistration_delay_seconds,  # the drain's deadline
            "secretArns": secrets.arns,
            "machinesEnvironment": dispatcher.machines_environment,
            "drained": settings.drain,
            "dashboardUrl": observability.dashboard_url,
            "alarmNames": observability.alarm_names,
            **({"turnUrls": turn_urls} if turn_urls is not None else {}),
            # The trunk's origination URIs (Twilio Elastic SIP Trunking, Telnyx): where its calls come in, UDP and TLS.
            **edge_outputs(sip_edge.public_ip if sip_edge is not None else None, settings.sip_edge),
            **({"botChannelUrl": self._bot_channel_url} if self._bot_channel_url is not None else {}),
            **({"recordingBucket": recordings.bucket} if recordings is not None else {}),
            # Read back by the next `up` (stacks/shared/recording_last_up.py).
            **({recording_last_up.OUTPUT: recording_last_up.store_output(settings.recording, last_store,
                                                                         recordings.holds)}
               if recordings is not None and settings.recording is not None else {}),
            # Several regions: the URL the other regions and the front door reach this one at.
            **({"regionUrl": settings.regions.url} if settings.regions is not None else {}),
        }
        self.register_outputs(self.outputs)

    def _webrtc_roles(self) -> tuple[str, ...]:
        """A TURN relay means cloud SmallWebRTC sessions, whose bot is a second image and runtime."""
        return ("bot-webrtc",) if self._settings.turn is not None else ()

    def _channel_url(self) -> pulumi.Output[str] | None:
        """The bot control channel: bots dial the ALB's HTTPS name (settings require it with a token)."""
        domain = self._cfg.dispatcher_domain
        return channel_url(domain) if domain and channel_secrets(self._settings) else None

    def _bot_args(self, image: pulumi.Output[str], repository_arn: pulumi.Output[str],
                  secrets: SecretStore) -> BotRuntimeArgs:
        settings, cfg = self._settings, self._cfg
        return BotRuntimeArgs(
            family=f"{settings.prefix}-bot",
            image=image,
            repository_arn=repository_arn,
            region=cfg.region,
            cpu=cfg.bot_cpu,
            memory=cfg.bot_memory,
            cpu_architecture=_architecture(settings),
            max_session_seconds=settings.max_session_seconds,
            log_retention_days=cfg.log_retention_days,
            secrets=secrets,
            # Not the channel's deployment secret: each bot gets its own machine credential at launch.
            secret_names=sorted({*settings.secrets.bot, *settings.observability.bot_secret_names()}),
            protect=settings.protect,
            channel_url=self._bot_channel_url,
            environment=bot_plain_environment(settings),
            permissions=settings.bot_permissions.aws_statements,
        )

    def _webrtc_bot(self, bot: BotRuntimeArgs, images: Images, registry: Registry) -> BotRuntime | None:
        """The SmallWebRTC bot's runtime: the bot's, with its own image, family and secret grant."""
        if self._settings.turn is None:
            return None
        assert images.bot_webrtc is not None  # built whenever a relay is configured
        args = replace(bot, family=f"{self._settings.prefix}-bot-webrtc", image=images.bot_webrtc,
                       role="bot-webrtc", repository_arn=registry.arn("bot-webrtc"))
        return BotRuntime(f"{self._name}-bot-webrtc", args, opts=pulumi.ResourceOptions(parent=self))

    def _releases(self, bot: BotRuntime, webrtc_bot: BotRuntime | None
                  ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The release this `up` deploys is the bot task definitions' current revisions, as the ECS
        provider picks them (`task_definition_for`: the SmallWebRTC one for webrtc sessions, the other
        for every other transport). A replaced revision stays ACTIVE (`skip_destroy`), so the
        releases listed before keep launching."""
        refs: dict[str, pulumi.Input[str]] = {"*": bot.task_definition_arn}
        if webrtc_bot is not None:
            refs["webrtc"] = webrtc_bot.task_definition_arn
        return listed(self._name, self._settings.releases, refs, parent=self,
                      regions=self._settings.regions is not None)

    def _turn_urls(self, network: Network, secrets: SecretStore) -> pulumi.Input[list[str]] | None:
        cfg = self._cfg

        def relay(turn: TurnSettings) -> pulumi.Output[list[str]]:
            return TurnRelay(f"{self._name}-turn", TurnRelayArgs(
                turn=turn, vpc_id=network.vpc_id, vpc_cidr=cfg.vpc_cidr, subnet_id=network.public_subnet_ids[0],
                region=cfg.region, secrets=secrets, secret_names=relay_secret_names(self._settings)),
                opts=pulumi.ResourceOptions(parent=self)).urls

        return turn_urls(self._settings.turn, relay)

    def _store(self, network: Network) -> CoordinationStore | None:
        """Several replicas share a coordination store (docs/replicas.md); one replica has none."""
        if not self._cfg.store:
            return None
        password = self._settings.secrets.store_password
        assert password is not None  # settings require it with the store
        return CoordinationStore(f"{self._name}-store", CoordinationStoreArgs(
            name=f"{self._settings.prefix}-kv", vpc_id=network.vpc_id, subnet_ids=network.public_subnet_ids,
            password=password, protect=self._settings.protect, ecpu_per_second=self._cfg.store_ecpu_per_second,
            data_gb=self._cfg.store_data_gb,
            previous_password=self._settings.secrets.store_previous_password), opts=pulumi.ResourceOptions(parent=self))

    def _dispatcher_args(self, image: pulumi.Output[str], repository_arn: pulumi.Output[str], network: Network,
                         cluster: aws_ecs.Cluster, secrets: SecretStore, bot: BotRuntime,
                         webrtc_bot: BotRuntime | None, turn_urls: pulumi.Input[list[str]] | None,
                         store: CoordinationStore | None, releases: pulumi.Output[str]) -> DispatcherArgs:
        settings, cfg = self._settings, self._cfg
        return DispatcherArgs(
            family=f"{settings.prefix}-dispatcher",
            balancer=BalancerArgs(
                name=settings.prefix, vpc_id=network.vpc_id, subnet_ids=network.public_subnet_ids,
                port=DISPATCHER_PORT, idle_timeout_seconds=cfg.alb_idle_timeout_seconds,
                certificate_arn=cfg.certificate_arn, allowed_cidrs=cfg.allowed_cidrs,
                max_session_seconds=settings.max_session_seconds, domain=cfg.dispatcher_domain,
                zone_id=cfg.dispatcher_zone_id),
            image=image,
            repository_arn=repository_arn,
            region=cfg.region,
            subnet_ids=network.public_subnet_ids,
            bot_security_group_id=network.bot_security_group_id,
            cluster_arn=cluster.arn,
            bot=bot,
            secrets=secrets,
            cpu=cfg.dispatcher_cpu,
            memory=settings.dispatcher_memory,
            cpu_architecture=_architecture(settings),
            desired_count=cfg.dispatcher_count,
            max_session_seconds=settings.max_session_seconds,
            log_retention_days=cfg.log_retention_days,
            protect=settings.protect,
            webrtc_bot=webrtc_bot,
            key_settings=plain_environment(settings),
            secret_names=dispatcher_secret_names(settings, self._stored),
            metric_lines=metric_environment(settings.metric_namespace),
            turn_urls=turn_urls,
            turn_transports=web_transports(settings),
            channel_url=self._bot_channel_url,
            drain=settings.drain,
            store_url=store.url if store is not None else None,
            observability=settings.observability,
            releases=releases,
            cell_role_arns=tuple(cell.role_arn for cell in ecs_cells.listed(cfg.ecs_cells)),
            cell_bot_task_roles=self._cell_bot_roles,
        )

    def _admitted_cell_bot_roles(self, provider: Provider) -> pulumi.Input[Sequence[str]]:
        """ecsCellBotTaskRoleArns, with the bot channel and cells once each cell of another account than the stack's
        (the caller's, which the preview reads) names one (ecs_cells.admitted): the stack's own bots' roles admit
        its own account's."""
        cells, roles = ecs_cells.listed(self._cfg.ecs_cells), self._cfg.ecs_cell_bot_task_roles
        if self._bot_channel_url is None or not cells:
            return roles
        caller = get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self, provider=provider))
        return caller.account_id.apply(lambda account: ecs_cells.admitted(cells, roles, account))


def _architecture(settings: Settings) -> str:
    """Fargate runs one architecture per task: x86 when the images are built for it, else ARM."""
    return "X86_64" if "linux/amd64" in settings.platforms else "ARM64"

