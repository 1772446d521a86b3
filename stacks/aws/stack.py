"""AwsStack: one environment of voicefleet on AWS.

Registry (ECR, scan on push, lifecycle) -> images pinned by digest -> network (public subnets, bot
SG without ingress) -> ECS cluster -> bot task definition (RunTask target) -> dispatcher service
behind an ALB. Every child gets the explicit, default-tagged provider through its parent.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pulumi
import pulumi_aws as aws

from images.component import Images, ImagesArgs, RegistryAuth
from stacks.aws.bot_runtime import BotRuntime, BotRuntimeArgs
from stacks.aws.dispatcher import Dispatcher, DispatcherArgs
from stacks.aws.network import Network, NetworkArgs
from stacks.aws.relay import TurnRelay, TurnRelayArgs
from stacks.aws.secrets import SecretStore, SecretStoreArgs
from stacks.aws.store import CoordinationStore, CoordinationStoreArgs
from stacks.config.bot import bot_project_args
from stacks.config.channel import channel_secrets, channel_url
from stacks.config.settings import Settings
from stacks.config.store import store_secrets
from stacks.config.turn import TURN_SECRET_ORDER, turn_secrets


def lifecycle_policy(keep: int) -> str:
    """One rule: the images of the newest `keep` builds stay, tagged or not. A superseded build is
    untagged as soon as `latest` moves, and it is what a circuit-breaker rollback or the previous
    task definition pulls, so no earlier rule may expire untagged images (ECR applies the lowest
    rulePriority first, and an image one rule selects is out of every later rule's reach). Each
    build leaves two images (the build and its registry-cache manifest), hence twice `keep`."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"keep the newest {keep} builds (superseded ones included) and their caches",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2 * keep},
         "action": {"type": "expire"}},
    ]})


class AwsStack(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        assert settings.aws is not None
        cfg = settings.aws
        provider = aws.Provider(name, region=cfg.region, default_tags={"tags": dict(settings.tags)})
        super().__init__("voicefleet:aws:AwsStack", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        child = pulumi.ResourceOptions(parent=self)
        prefix = settings.prefix

        repositories: dict[str, aws.ecr.Repository] = {}
        roles = ("bot", "dispatcher", *(("bot-webrtc",) if settings.turn else ()))
        for role in roles:
            repository = aws.ecr.Repository(
                f"{name}-{role}",
                name=f"{prefix}-{role}",
                # Mutable tags: the build cache tag is rewritten on every build; what runs is
                # pinned by digest, so a moved tag never changes a running workload.
                image_tag_mutability="MUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "AES256"}],
                force_delete=not settings.protect,
                opts=pulumi.ResourceOptions(parent=self, protect=settings.protect),
            )
            aws.ecr.LifecyclePolicy(f"{name}-{role}", repository=repository.name,
                                    policy=lifecycle_policy(settings.image_retention_count), opts=child)
            repositories[role] = repository

        token = aws.ecr.get_authorization_token_output(registry_id=repositories["bot"].registry_id,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))
        images = Images(name, ImagesArgs(
            registry=RegistryAuth(
                address=repositories["bot"].repository_url.apply(lambda url: url.split("/", 1)[0]),
                username=token.user_name,
                password=token.password,
            ),
            repositories={role: repo.repository_url for role, repo in repositories.items()},
            webrtc=settings.turn is not None,
            **bot_project_args(settings),
            source_revision=settings.source_revision,
            platforms=settings.platforms,
            build_on_preview=settings.build_on_preview,
        ), opts=child)

        network = Network(name, NetworkArgs(cidr=cfg.vpc_cidr, az_count=cfg.az_count), opts=child)
        secrets = SecretStore(name, SecretStoreArgs(
            path=f"/{settings.project}/{settings.stack}",
            values={"DAILY_API_KEY": settings.secrets.daily_api_key,
                    "DISPATCHER_API_KEYS": settings.secrets.dispatcher_api_keys, **settings.secrets.bot,
                    **turn_secrets(settings), **channel_secrets(settings),
                    **store_secrets(settings, cfg.store), **settings.secrets.phone},
            recovery_window_days=cfg.secret_recovery_days,
            protect=settings.protect,
        ), opts=child)

        cluster = aws.ecs.Cluster(name, name=prefix, settings=[{
            "name": "containerInsights", "value": "enabled" if cfg.container_insights else "disabled"}], opts=child)
        # Both Fargate capacity providers are attached, so ECS_CAPACITY_PROVIDERS can pick either
        # per RunTask without an infrastructure change.
        aws.ecs.ClusterCapacityProviders(
            name, cluster_name=cluster.name, capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=[{"capacity_provider": "FARGATE", "weight": 1}], opts=child)

        # Fargate runs one architecture per task: x86 when the images are built for it, else ARM.
        architecture = "X86_64" if "linux/amd64" in settings.platforms else "ARM64"
        # The bot control channel: bots dial the ALB's HTTPS name (settings require it with a token).
        bot_channel_url = channel_url(cfg.dispatcher_domain) if cfg.dispatcher_domain and channel_secrets(settings) \
            else None
        bot_args = BotRuntimeArgs(
            family=f"{prefix}-bot",
            image=images.bot,
            repository_arn=repositories["bot"].arn,
            region=cfg.region,
            cpu=cfg.bot_cpu,
            memory=cfg.bot_memory,
            cpu_architecture=architecture,
            max_session_seconds=settings.max_session_seconds,
            log_retention_days=cfg.log_retention_days,
            secrets=secrets,
            # Not the channel's deployment secret: each bot gets its own machine credential at launch.
            secret_names=sorted(settings.secrets.bot),
            protect=settings.protect,
            channel_url=bot_channel_url,
        )
        bot = BotRuntime(f"{name}-bot", bot_args, opts=child)
        webrtc_bot = None
        turn_urls: pulumi.Input[list[str]] | None = None
        if settings.turn is not None:
            assert images.bot_webrtc is not None  # built whenever a relay is configured
            webrtc_bot = BotRuntime(f"{name}-bot-webrtc", replace(bot_args, family=f"{prefix}-bot-webrtc",
                                                                     image=images.bot_webrtc, role="bot-webrtc",
                                                                     repository_arn=repositories["bot-webrtc"].arn),
                                    opts=child)
            if settings.turn.mode == "managed":
                relay = TurnRelay(f"{name}-turn", TurnRelayArgs(
                    turn=settings.turn, vpc_id=network.vpc_id, vpc_cidr=cfg.vpc_cidr,
                    subnet_id=network.public_subnet_ids[0], region=cfg.region, secrets=secrets,
                    secret_names=sorted(turn_secrets(settings), key=TURN_SECRET_ORDER.index)), opts=child)
                turn_urls = relay.urls
            else:
                turn_urls = list(settings.turn.external_urls)
        store = None
        if cfg.store:  # several replicas share it (docs/replicas.md)
            assert settings.secrets.store_password is not None  # settings require it with the store
            store = CoordinationStore(f"{name}-store", CoordinationStoreArgs(
                name=f"{prefix}-kv", vpc_id=network.vpc_id, subnet_ids=network.public_subnet_ids,
                password=settings.secrets.store_password, protect=settings.protect), opts=child)
        dispatcher = Dispatcher(f"{name}-dispatcher", DispatcherArgs(
            family=f"{prefix}-dispatcher",
            balancer_name=prefix,
            image=images.dispatcher,
            repository_arn=repositories["dispatcher"].arn,
            region=cfg.region,
            vpc_id=network.vpc_id,
            subnet_ids=network.public_subnet_ids,
            bot_security_group_id=network.bot_security_group_id,
            cluster_arn=cluster.arn,
            bot=bot,
            secrets=secrets,
            cpu=cfg.dispatcher_cpu,
            memory=settings.dispatcher_memory,
            cpu_architecture=architecture,
            desired_count=cfg.dispatcher_count,
            capacity_providers=cfg.capacity_providers,
            max_concurrent_sessions=settings.max_concurrent_sessions,
            max_session_seconds=settings.max_session_seconds,
            idle_timeout_seconds=cfg.alb_idle_timeout_seconds,
            keep_alive_seconds=cfg.keep_alive_seconds,
            certificate_arn=cfg.certificate_arn,
            allowed_cidrs=cfg.allowed_cidrs,
            log_retention_days=cfg.log_retention_days,
            protect=settings.protect,
            webrtc_bot=webrtc_bot,
            reserve=settings.reserve,
            turn_urls=turn_urls,
            **({"turn_credentials_per_key": settings.turn.credentials_per_key} if settings.turn is not None else {}),
            channel_url=bot_channel_url,
            drain=settings.drain,
            domain=cfg.dispatcher_domain,
            zone_id=cfg.dispatcher_zone_id,
            store_url=store.url if store is not None else None,
            phone_secret_names=tuple(sorted(settings.secrets.phone)),
        ), opts=child)
        if store is not None:
            store.allow_from(dispatcher.security_group_id)

        self.outputs = {
            "cloud": "aws",
            "region": cfg.region,
            "dispatcherUrl": dispatcher.url,
            "albDnsName": dispatcher.alb_dns_name,  # what dispatcherDomain's DNS record points at
            "botImage": images.bot,
            "dispatcherImage": images.dispatcher,
            "clusterName": cluster.name,
            "botTaskFamily": bot.family,
            "botSecurityGroupId": network.bot_security_group_id,
            "subnetIds": network.public_subnet_ids,
            "botLogGroup": bot.log_group_name,
            "dispatcherLogGroup": dispatcher.log_group_name,
            "dispatcherService": dispatcher.service_name,
            "secretArns": secrets.arns,
            "machinesEnvironment": dispatcher.machines_environment,
            "drained": settings.drain,
            **({"turnUrls": turn_urls} if turn_urls is not None else {}),
            **({"botChannelUrl": bot_channel_url} if bot_channel_url is not None else {}),
        }
        self.register_outputs(self.outputs)
