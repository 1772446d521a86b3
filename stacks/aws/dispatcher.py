"""Dispatcher on ECS: a Fargate service behind an internet-facing ALB.

The ALB's idle timeout (60 s) is shorter than the dispatcher's keep-alive (65 s, passed as
KEEP_ALIVE_SECONDS): the ALB must be the side that closes idle connections, or it forwards a
request onto a connection uvicorn just closed and the client sees a 502.
Deployments roll back on their own when new tasks fail health checks (circuit breaker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from botchannel.contract import CHANNEL_URL_VARIABLE
from dispatcher.media.turn import DEFAULT_CREDENTIALS_PER_KEY
from dispatcher.reserve.policy import ReserveSettings
from stacks import contract, turn_server
from stacks.aws.bot_runtime import ECS_TASKS, BotRuntime, execution_policy
from stacks.aws.container import fargate_container, fargate_task_definition
from stacks.aws.iam import assume_role_policy
from stacks.aws.secrets import SecretStore
from stacks.config import store as store_settings
from stacks.config.phone import FARGATE_MAX_STOP_TIMEOUT, deregistration_delay


@dataclass(frozen=True)
class DispatcherArgs:
    family: str
    balancer_name: str  # ≤ 32 characters (settings bound the stack name; preflight checks it)
    image: pulumi.Input[str]  # digest-pinned
    repository_arn: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    bot_security_group_id: pulumi.Input[str]
    cluster_arn: pulumi.Output[str]
    bot: BotRuntime
    secrets: SecretStore
    cpu: int
    memory: int
    cpu_architecture: str  # X86_64 or ARM64: one the images are built for (settings.platforms)
    desired_count: int
    capacity_providers: str
    max_concurrent_sessions: int
    max_session_seconds: int
    idle_timeout_seconds: int
    keep_alive_seconds: int
    certificate_arn: str | None
    allowed_cidrs: Sequence[str]
    log_retention_days: int
    protect: bool
    reserve: ReserveSettings  # the warm reserve's sizing (RESERVE_*)
    webrtc_bot: BotRuntime | None = None  # the SmallWebRTC bot (a TURN relay is configured)
    turn_urls: pulumi.Input[Sequence[str]] | None = None
    turn_credentials_per_key: int = DEFAULT_CREDENTIALS_PER_KEY  # with turn_urls: one key\'s share of the relay
    channel_url: pulumi.Input[str] | None = None  # the bot control channel: the URL bots dial
    drain: bool = False  # before a destroy: no dispatcher task
    domain: str | None = None  # dispatcherDomain, which bots dial
    zone_id: str | None = None  # its Route 53 zone: the record is written here and awaited
    store_url: pulumi.Input[str] | None = None  # several replicas: their coordination store (no secret in it)
    phone_secret_names: tuple[str, ...] = ()  # the carriers' credentials that are set (stacks/config/phone.py)


def environment(args: DispatcherArgs, subnets: pulumi.Output[str]) -> dict[str, pulumi.Input[str]]:
    """The `ecs` machines provider's environment (stacks/contract.py names every key)."""
    return {
        "MACHINES": "ecs",
        "MAX_CONCURRENT_SESSIONS": str(args.max_concurrent_sessions),
        "MAX_SESSION_SECONDS": str(args.max_session_seconds),
        "PORT": str(contract.DISPATCHER_PORT),
        "HOST": contract.DISPATCHER_HOST,
        "AWS_REGION": args.region,
        "ECS_CLUSTER": args.cluster_arn,
        "ECS_TASK_DEFINITION": args.bot.family,
        "ECS_CONTAINER_NAME": contract.BOT_CONTAINER_NAME,
        "ECS_SUBNETS": subnets,
        "ECS_SECURITY_GROUPS": pulumi.Output.from_input(args.bot_security_group_id),
        "ECS_ASSIGN_PUBLIC_IP": "ENABLED",
        "ECS_CAPACITY_PROVIDERS": args.capacity_providers,
        "KEEP_ALIVE_SECONDS": str(args.keep_alive_seconds),
        **({"ECS_TASK_DEFINITION_WEBRTC": args.webrtc_bot.family} if args.webrtc_bot else {}),
        **args.reserve.to_env(),
        **(turn_server.dispatcher_environment(args.turn_urls, args.turn_credentials_per_key)
           if args.turn_urls is not None else {}),
        **({CHANNEL_URL_VARIABLE: args.channel_url} if args.channel_url is not None else {}),
        **({store_settings.URL_VARIABLE: args.store_url} if args.store_url is not None else {}),
    }


def secret_names(args: DispatcherArgs) -> tuple[str, ...]:
    return (contract.DISPATCHER_SECRETS + (contract.TURN_SECRETS if args.turn_urls is not None else ())
            + (contract.CHANNEL_SECRETS if args.channel_url is not None else ())
            + (store_settings.STORE_SECRETS if args.store_url is not None else ()) + args.phone_secret_names)


def _rule(kind: str, name: str, parent: pulumi.Resource, **kwargs: Any) -> None:
    cls = aws.vpc.SecurityGroupIngressRule if kind == "ingress" else aws.vpc.SecurityGroupEgressRule
    cls(name, opts=pulumi.ResourceOptions(parent=parent), **kwargs)


class Dispatcher(pulumi.ComponentResource):
    url: pulumi.Output[str]
    service_name: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    machines_environment: dict[str, pulumi.Input[str]]  # what stacks/tools/drain.py needs (contract.MACHINES_ENV)

    def __init__(self, name: str, args: DispatcherArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:Dispatcher", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        port = contract.DISPATCHER_PORT

        # Security groups: clients -> ALB (443, or 80 in a plain-HTTP dev stack) -> dispatcher (8080).
        alb_sg = aws.ec2.SecurityGroup(f"{name}-alb", vpc_id=args.vpc_id, description="voicefleet dispatcher ALB",
                                       tags={"Name": f"{name}-alb"}, opts=child)
        app_sg = aws.ec2.SecurityGroup(f"{name}-app", vpc_id=args.vpc_id, description="voicefleet dispatcher tasks",
                                       tags={"Name": f"{name}-app"}, opts=child)
        listen_ports = (443, 80) if args.certificate_arn else (80,)
        for listen in listen_ports:
            for index, cidr in enumerate(args.allowed_cidrs):
                _rule("ingress", f"{name}-alb-in-{listen}-{index}", self, security_group_id=alb_sg.id,
                      ip_protocol="tcp", from_port=listen, to_port=listen, cidr_ipv4=cidr)
        _rule("egress", f"{name}-alb-out", self, security_group_id=alb_sg.id, ip_protocol="tcp", from_port=port,
              to_port=port, referenced_security_group_id=app_sg.id)
        _rule("ingress", f"{name}-app-in", self, security_group_id=app_sg.id, ip_protocol="tcp", from_port=port,
              to_port=port, referenced_security_group_id=alb_sg.id)
        # AWS APIs, Daily and the registry are all HTTPS.
        _rule("egress", f"{name}-app-out-https", self, security_group_id=app_sg.id, ip_protocol="tcp",
              from_port=443, to_port=443, cidr_ipv4="0.0.0.0/0")

        # Named explicitly: an auto-name is the logical name plus 8 characters, which passes the
        # 32-character limit of load balancer and target group names (stacks/tools/preflight/names.py).
        balancer = aws.lb.LoadBalancer(
            name,
            name=args.balancer_name,
            load_balancer_type="application",
            internal=False,
            subnets=list(args.subnet_ids),
            security_groups=[alb_sg.id],
            idle_timeout=args.idle_timeout_seconds,
            drop_invalid_header_fields=True,
            opts=child,
        )
        # A prefix (at most 6 characters) plus a generated suffix: a changed target group can be
        # created before the old one is deleted, and the name stays within 32 characters.
        targets = aws.lb.TargetGroup(
            name,
            name_prefix="vf-",
            port=port,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=deregistration_delay(args.max_session_seconds),  # calls end first
            health_check={"path": "/healthz", "matcher": "200", "interval": 15, "timeout": 5,
                          "healthy_threshold": 2, "unhealthy_threshold": 3},
            opts=child,
        )
        forward: list[aws.lb.ListenerDefaultActionArgsDict] = [{"type": "forward", "target_group_arn": targets.arn}]
        if args.certificate_arn:
            listener = aws.lb.Listener(f"{name}-https", load_balancer_arn=balancer.arn, port=443, protocol="HTTPS",
                                       certificate_arn=args.certificate_arn,
                                       ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
                                       default_actions=forward, opts=child)
            redirect: list[aws.lb.ListenerDefaultActionArgsDict] = [{"type": "redirect", "redirect": {
                "port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}]
            aws.lb.Listener(f"{name}-http", load_balancer_arn=balancer.arn, port=80, protocol="HTTP",
                            default_actions=redirect, opts=child)
            self.url = pulumi.Output.concat("https://", balancer.dns_name)
        else:
            listener = aws.lb.Listener(f"{name}-http", load_balancer_arn=balancer.arn, port=80, protocol="HTTP",
                                       default_actions=forward, opts=child)
            self.url = pulumi.Output.concat("http://", balancer.dns_name)

        self.alb_dns_name = balancer.dns_name
        # Bots dial wss://<dispatcherDomain>: until that name points at this ALB every bot the
        # reserve starts fails its channel. With the zone given, the record is written here and the
        # service (which starts the reserve) waits for it.
        record: list[pulumi.Resource] = []
        if args.zone_id and args.domain:
            record.append(aws.route53.Record(name, zone_id=args.zone_id, name=args.domain, type="A",
                                             aliases=[{"name": balancer.dns_name, "zone_id": balancer.zone_id,
                                                       "evaluate_target_health": True}], opts=child))
        logs = aws.cloudwatch.LogGroup(name, name=f"/ecs/{args.family}",
                                       retention_in_days=args.log_retention_days,
                                       opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        execution_role = aws.iam.Role(f"{name}-execution", assume_role_policy=assume_role_policy(ECS_TASKS),
                                      description="ECS agent for the voicefleet dispatcher", opts=child)
        aws.iam.RolePolicy(f"{name}-execution", role=execution_role.id,
                           policy=execution_policy(args.repository_arn, logs.arn), opts=child)
        args.secrets.grant_read("dispatcher", execution_role, secret_names(args))
        task_role = aws.iam.Role(f"{name}-task", assume_role_policy=assume_role_policy(ECS_TASKS),
                                 description="voicefleet dispatcher: starts and stops bot tasks", opts=child)
        # With the channel the dispatcher holds a warm reserve and claims idle tasks by re-tagging them.
        claim = args.channel_url is not None
        args.bot.grant_run("dispatcher", task_role, args.cluster_arn, claim=claim)
        if args.webrtc_bot is not None:
            args.webrtc_bot.grant_run("dispatcher", task_role, args.cluster_arn, claim=claim)

        subnets = pulumi.Output.all(*args.subnet_ids).apply(lambda ids: ",".join(ids))
        env: Mapping[str, pulumi.Input[str]] = environment(args, subnets)
        self.machines_environment = contract.machines_environment(dict(env))  # type: ignore[assignment]
        container = fargate_container(
            name=contract.DISPATCHER_CONTAINER_NAME,
            image=args.image,
            environment=[{"name": key, "value": env[key]} for key in sorted(env)],
            secrets=args.secrets.references(secret_names(args)),
            log_group=logs.name,
            region=args.region,
            port=port,
            stop_timeout=FARGATE_MAX_STOP_TIMEOUT,  # after the drain: time to end what is left
        )
        task_definition = fargate_task_definition(
            name,
            family=args.family,
            cpu=args.cpu,
            memory=args.memory,
            cpu_architecture=args.cpu_architecture,
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container=container,
            opts=child,
        )
        service = aws.ecs.Service(
            name,
            cluster=args.cluster_arn,
            task_definition=task_definition.arn,
            # Drained (before a destroy): no task, so nothing launches bots (docs/pulumi.md).
            desired_count=0 if args.drain else args.desired_count,
            launch_type="FARGATE",
            network_configuration={"subnets": list(args.subnet_ids), "security_groups": [app_sg.id],
                                   # Public subnets without NAT: the task needs its own address to
                                   # reach ECR, Secrets Manager, ECS and Daily. Ingress is ALB-only.
                                   "assign_public_ip": True},
            load_balancers=[{"target_group_arn": targets.arn, "container_name": contract.DISPATCHER_CONTAINER_NAME,
                             "container_port": port}],
            health_check_grace_period_seconds=30,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            wait_for_steady_state=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[listener, *record]),
        )
        self.service_name = service.name
        self.security_group_id = app_sg.id  # the coordination store lets in this group only
        self.log_group_name = logs.name
        self.register_outputs({"url": self.url, "service_name": self.service_name,
                               "log_group_name": self.log_group_name})
