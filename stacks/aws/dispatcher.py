"""Dispatcher on ECS: a Fargate service behind the internet-facing ALB of `balancer.py`.

Deployments roll back on their own when new tasks fail health checks (circuit breaker). The task's
execution role pulls one repository, writes one log group and reads the dispatcher's secrets; its
task role may start, watch and stop this stack's bot tasks and nothing else (`BotRuntime.grant_run`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws.cloudwatch as aws_cloudwatch
import pulumi_aws.ecs as aws_ecs
import pulumi_aws.iam as aws_iam

from botchannel.contract import CHANNEL_URL_VARIABLE
from stacks.aws.balancer import Balancer, BalancerArgs
from stacks.aws.bot_runtime import ECS_TASKS, BotRuntime, execution_policy
from stacks.aws.cell_task_definitions import oldest_release
from stacks.aws.container import fargate_container, fargate_task_definition
from stacks.aws.iam import assume_role_policy, policy_document, statement
from stacks.aws.secrets import SecretStore
from stacks.config import store as store_settings
from stacks.config.ceiling import DISPATCHER_MAXIMUM_PERCENT
from stacks.config.observability import ObservabilitySettings
from stacks.config.phone import FARGATE_MAX_STOP_TIMEOUT, deregistration_delay, service_wait_seconds
from stacks.config.sip_edge import URL_VARIABLE
from stacks.shared import contract, turn_server


@dataclass(frozen=True)
class DispatcherArgs:
    family: str
    balancer: BalancerArgs
    image: pulumi.Input[str]  # digest-pinned
    repository_arn: pulumi.Input[str]
    region: str
    subnet_ids: Sequence[pulumi.Input[str]]
    bot_security_group_id: pulumi.Input[str]
    cluster_arn: pulumi.Output[str]
    bot: BotRuntime
    secrets: SecretStore
    cpu: int
    memory: int
    cpu_architecture: str  # X86_64 or ARM64: one the images are built for (settings.platforms)
    desired_count: int
    max_session_seconds: int
    log_retention_days: int
    protect: bool
    # The settings the stack's keys set (stacks/config/dispatcher_keys.py plain_environment): sessions,
    # the reserve, the bot task's size, the regions', the channel's caps, …
    key_settings: Mapping[str, str]
    # What it takes by reference (stacks/config/secrets.py dispatcher_secret_names), in Secrets Manager.
    secret_names: tuple[str, ...]
    metric_lines: Mapping[str, str]  # METRIC_LINES and its namespace (observability.py)
    webrtc_bot: BotRuntime | None = None  # the SmallWebRTC bot (a TURN relay is configured)
    turn_urls: pulumi.Input[Sequence[str]] | None = None
    turn_transports: tuple[str, ...] = ("daily", "webrtc")  # with turn_urls: the web sessions offered, default first
    channel_url: pulumi.Input[str] | None = None  # the bot control channel: the URL bots dial
    drain: bool = False  # before a destroy: no dispatcher task
    store_url: pulumi.Input[str] | None = None  # several replicas: their coordination store (no secret in it)
    # JSON logs (stacks/config/observability.py).
    observability: ObservabilitySettings = ObservabilitySettings()
    releases: pulumi.Input[str] = ""  # RELEASES: the kept releases' task definitions (stacks/shared/releases.py)
    # Recording on: RECORDING_DESTINATION (stacks/config/recording.py) and the task role's grant on the bucket
    # (stacks/aws/recordings.py); empty, nothing recorded and no grant.
    recording: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    recording_statements: Sequence[Mapping[str, object]] = ()
    # With holds: the container's label that follows Object Lock (a rollout when it turns on), and what the
    # grant waits for (stacks/aws/recordings.py).
    recording_labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    recording_waits_for: Sequence[pulumi.Resource] = ()
    # A SIP edge that places calls (stacks/aws/sip_edge.py): its control API on its private address.
    sip_edge_url: pulumi.Input[str] | None = None
    # ecsCells (stacks/config/ecs_cells.py): the roles the dispatcher assumes in the cells' accounts, which its task
    # role may assume and nothing else there; and the cells' bots' task roles, admitted beside the stack's own.
    cell_role_arns: tuple[str, ...] = ()
    cell_bot_task_roles: pulumi.Input[Sequence[str]] = ()


def _default_task_definition(args: DispatcherArgs, bot: BotRuntime, transport: str) -> pulumi.Input[str]:
    """The bot family (its newest revision, the current build's) in the stack's own account; with ecsCells the
    oldest kept release's task definition, which every cell maps (stacks/aws/cell_task_definitions.py)."""
    if not args.cell_role_arns:
        return bot.family
    return pulumi.Output.from_input(args.releases).apply(lambda text: oldest_release(text, transport) or bot.family)


def environment(args: DispatcherArgs, subnets: pulumi.Output[str]) -> dict[str, pulumi.Input[str]]:
    """The `ecs` machines provider's environment (stacks/shared/contract.py names every key): the stack
    keys' settings, and what the stack's resources give it."""
    return {
        **args.key_settings,
        **contract.serving_environment("ecs"),
        "ECS_CLUSTER": args.cluster_arn,
        "ECS_TASK_DEFINITION": _default_task_definition(args, args.bot, "daily"),
        "ECS_CONTAINER_NAME": contract.BOT_CONTAINER_NAME,
        "ECS_SUBNETS": subnets,
        "ECS_SECURITY_GROUPS": pulumi.Output.from_input(args.bot_security_group_id),
        "ECS_ASSIGN_PUBLIC_IP": "ENABLED",
        **({"ECS_TASK_DEFINITION_WEBRTC": _default_task_definition(args, args.webrtc_bot, "webrtc")}
           if args.webrtc_bot else {}),
        "RELEASES": args.releases,
        **args.metric_lines,
        **(turn_server.dispatcher_environment(args.turn_urls, args.turn_transports)
           if args.turn_urls is not None else {}),
        **({CHANNEL_URL_VARIABLE: args.channel_url, **bot_task_roles(args)} if args.channel_url is not None else {}),
        **({store_settings.URL_VARIABLE: args.store_url} if args.store_url is not None else {}),
        **args.observability.dispatcher_environment(),
        **args.recording,
        **({URL_VARIABLE: args.sip_edge_url} if args.sip_edge_url is not None else {}),
    }


def bot_task_roles(args: DispatcherArgs) -> dict[str, pulumi.Input[str]]:
    """The bots' task roles, which a bot's hello must prove a session of (its task's: the
    dispatcher asks STS with the bot's presigned GetCallerIdentity, which needs no permission)."""
    bots = [args.bot, *([args.webrtc_bot] if args.webrtc_bot else [])]
    roles = pulumi.Output.all(pulumi.Output.from_input(args.cell_bot_task_roles),
                              *(bot.task_role.arn for bot in bots)).apply(
        lambda found: ",".join(dict.fromkeys([*found[1:], *found[0]])))
    return {"ECS_BOT_TASK_ROLE_ARNS": roles}


class Dispatcher(pulumi.ComponentResource):
    url: pulumi.Output[str]
    alb_dns_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    deregistration_delay_seconds: int
    security_group_id: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    machines_environment: dict[str, pulumi.Input[str]]  # what stacks/tools/drain.py needs (contract.MACHINES_ENV)
    # The ALB's metrics of its tasks (AWS/ApplicationELB, dimensions TargetGroup and LoadBalancer).
    target_group_dimensions: dict[str, pulumi.Output[str]]
    service: aws_ecs.Service  # steady once `up` has waited for its tasks' health
    task_role_arn: pulumi.Output[str]  # what the cells' roles trust (stacks/aws/cell_task_definitions.py)

    def __init__(self, name: str, args: DispatcherArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:Dispatcher", name, None, opts)
        front = Balancer(name, args.balancer, parent=self)
        logs = aws_cloudwatch.LogGroup(name, name=f"/ecs/{args.family}",
                                       retention_in_days=args.log_retention_days,
                                       opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        execution_role, task_role = self._roles(name, args, logs)
        self.task_role_arn = task_role.arn
        wait = f"{service_wait_seconds(args.max_session_seconds)}s"
        task_definition = self._task_definition(name, args, logs, execution_role, task_role)
        service = aws_ecs.Service(
            name,
            cluster=args.cluster_arn,
            task_definition=task_definition.arn,
            # Drained (before a destroy): no task, so nothing launches bots (docs/pulumi.md).
            desired_count=0 if args.drain else args.desired_count,
            launch_type="FARGATE",
            network_configuration={"subnets": list(args.subnet_ids), "security_groups": [front.app_security_group_id],
                                   # Public subnets without NAT: the task needs its own address to
                                   # reach ECR, Secrets Manager, ECS and Daily. Ingress is ALB-only.
                                   "assign_public_ip": True},
            load_balancers=[{"target_group_arn": front.target_group_arn,
                             "container_name": contract.DISPATCHER_CONTAINER_NAME,
                             "container_port": contract.DISPATCHER_PORT}],
            health_check_grace_period_seconds=30,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=DISPATCHER_MAXIMUM_PERCENT,  # the ceiling counts its surge
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            wait_for_steady_state=True,
            # The provider waits for steady state for its create/update timeout, 20 minutes unless
            # set (stacks/tools/preflight/provider_waits.py); a replaced task drains longer than that
            # on a stack with long calls, and the `up` would fail while the rollout goes on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=front.ready,
                                        custom_timeouts=pulumi.CustomTimeouts(create=wait, update=wait, delete=wait)),
        )
        self.url = front.url
        self.alb_dns_name = front.dns_name
        self.target_group_dimensions = {"TargetGroup": front.target_group_arn_suffix,
                                        "LoadBalancer": front.balancer_arn_suffix}
        self.service = service
        self.service_name = service.name
        # How long a replaced task drains: `python -m stacks.drain` waits at least this long by default.
        self.deregistration_delay_seconds = deregistration_delay(args.max_session_seconds)
        self.security_group_id = front.app_security_group_id  # the coordination store lets in this group only
        self.log_group_name = logs.name
        self.register_outputs({"url": self.url, "service_name": self.service_name,
                               "log_group_name": self.log_group_name})

    def _roles(self, name: str, args: DispatcherArgs,
               logs: aws_cloudwatch.LogGroup) -> tuple[aws_iam.Role, aws_iam.Role]:
        """The execution role (pull, logs, the dispatcher's secrets) and the task role (bots only; with cells,
        assuming the cells' roles)."""
        child = pulumi.ResourceOptions(parent=self)
        execution_role = aws_iam.Role(f"{name}-execution", assume_role_policy=assume_role_policy(ECS_TASKS),
                                      description="ECS agent for the voicefleet dispatcher", opts=child)
        aws_iam.RolePolicy(f"{name}-execution", role=execution_role.id,
                           policy=execution_policy(args.repository_arn, logs.arn), opts=child)
        args.secrets.grant_read("dispatcher", execution_role, args.secret_names)
        task_role = aws_iam.Role(f"{name}-task", assume_role_policy=assume_role_policy(ECS_TASKS),
                                 description="voicefleet dispatcher: starts and stops bot tasks", opts=child)
        # With the channel the dispatcher holds a warm reserve and claims idle tasks by re-tagging them.
        claim = args.channel_url is not None
        args.bot.grant_run("dispatcher", task_role, args.cluster_arn, claim=claim)
        if args.webrtc_bot is not None:
            args.webrtc_bot.grant_run("dispatcher", task_role, args.cluster_arn, claim=claim)
        if args.cell_role_arns:
            # STS checks the cell's trust policy (its `sts:ExternalId` condition, where the cell names one: the
            # dispatcher sends it with each AssumeRole); this side names the roles, no wildcard.
            aws_iam.RolePolicy(f"{name}-cells", role=task_role.id,
                               policy=policy_document(statement(["sts:AssumeRole"], list(args.cell_role_arns),
                                                                sid="AssumeCellRoles")), opts=child)
        if args.recording_statements:
            aws_iam.RolePolicy(f"{name}-recordings", role=task_role.id,
                               policy=policy_document(*args.recording_statements),
                               opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.recording_waits_for)))
        return execution_role, task_role

    def _task_definition(self, name: str, args: DispatcherArgs, logs: aws_cloudwatch.LogGroup,
                         execution_role: aws_iam.Role, task_role: aws_iam.Role) -> aws_ecs.TaskDefinition:
        subnets = pulumi.Output.all(*args.subnet_ids).apply(lambda ids: ",".join(ids))
        env: Mapping[str, pulumi.Input[str]] = environment(args, subnets)
        self.machines_environment = contract.machines_environment(dict(env))  # type: ignore[assignment]
        container = fargate_container(
            name=contract.DISPATCHER_CONTAINER_NAME,
            image=args.image,
            environment=[{"name": key, "value": env[key]} for key in sorted(env)],
            secrets=args.secrets.references(args.secret_names),  # ECS `secrets`: valueFrom
            log_group=logs.name,
            region=args.region,
            port=contract.DISPATCHER_PORT,
            stop_timeout=FARGATE_MAX_STOP_TIMEOUT,  # after the drain: time to end what is left
            labels=args.recording_labels,
        )
        return fargate_task_definition(
            name,
            family=args.family,
            cpu=args.cpu,
            memory=args.memory,
            cpu_architecture=args.cpu_architecture,
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container=container,
            opts=pulumi.ResourceOptions(parent=self),
        )
