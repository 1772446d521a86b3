"""`MACHINES=ecs` settings (EcsSettings), apart from the ECS client (provider.py) so that reading them,
as `voicefleet config check` does, imports no HTTP client: aiohttp, google-auth and cryptography are
the provider's and the bots' identity check's, not the settings'.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dispatcher.channel.identity import identity_audience
from dispatcher.machines.ecs.cell_settings import EcsCell, ecs_cells, foreign_task_definition, run_nowhere
from dispatcher.machines.releases import release_references
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError, require
from voicefleet_settings.read import setting_choice, setting_float, setting_text

# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html: RunTask 20 calls/s
# (burst and sustained), and Fargate task launches a bucket of 100 refilled at 20/s per account and
# region. With one task per call (provider.py, `_run_task_params`) the RunTask rate is the tighter of the
# two, so it is the one counted, once for the deployment (dispatcher/machines/creates.py).
DEFAULT_RUN_TASK_RATE = Rate(per_second=20, burst=20)
_ROLE_ARN = re.compile(r"arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/(?:[^/]+/)*(?P<name>[^/]+)")


@dataclass(frozen=True)
class TaskRole:
    partition: str
    account: str
    name: str


def task_roles(raw: str) -> tuple[TaskRole, ...]:
    """`ECS_BOT_TASK_ROLE_ARNS`: the bots' task role ARNs, comma-separated."""
    roles = []
    for arn in (a.strip() for a in raw.split(",") if a.strip()):
        if (match := _ROLE_ARN.fullmatch(arn)) is None:
            raise SettingsError(
                f"ECS_BOT_TASK_ROLE_ARNS: {arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        roles.append(TaskRole(match["partition"], match["account"], match["name"]))
    return tuple(roles)


def sts_endpoint(env: Mapping[str, str], region: str) -> str:
    """As the AWS SDKs pick it: STS's own override, the global one, else the regional endpoint."""
    override = env.get("AWS_ENDPOINT_URL_STS", "").strip() or env.get("AWS_ENDPOINT_URL", "").strip()
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return (override or f"https://sts.{region}.{domain}").rstrip("/")


def _csv(env: Mapping[str, str], name: str, *, required: bool) -> tuple[str, ...]:
    values = tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())
    if required and not values:
        raise SettingsError(f"{name} must be set (comma-separated) when MACHINES=ecs")
    return values


def parse_capacity_providers(raw: str) -> tuple[dict[str, Any], ...]:
    """`FARGATE` or `FARGATE_SPOT:1,FARGATE:1` (name[:weight[:base]]) → a capacityProviderStrategy."""
    strategy = []
    for item in (p.strip() for p in raw.split(",") if p.strip()):
        name, *numbers = item.split(":")
        try:
            weight, base = (int(numbers[0]) if numbers else 1), (int(numbers[1]) if len(numbers) > 1 else 0)
        except ValueError:
            raise SettingsError(f"ECS_CAPACITY_PROVIDERS item {item!r} is not name[:weight[:base]]") from None
        strategy.append({"capacityProvider": name, "weight": weight, "base": base})
    if not strategy:
        raise SettingsError("ECS_CAPACITY_PROVIDERS is empty")
    return tuple(strategy)


@dataclass(frozen=True)
class EcsSettings:
    region: str
    cluster: str
    task_definition: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    container_name: str = "bot"
    assign_public_ip: str = "ENABLED"
    capacity_providers: tuple[dict[str, Any], ...] = field(default_factory=lambda: parse_capacity_providers("FARGATE"))
    endpoint_url: str | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retry_deadline: float = 10.0
    poll_seconds: float = 1.0
    run_task_rate: Rate = DEFAULT_RUN_TASK_RATE
    # The SmallWebRTC bot's task definition (a second image variant), for `webrtc` sessions;
    # unset: every session runs `task_definition`.
    task_definition_webrtc: str | None = None
    # Bots' task identities (ecs/identity.py): the bots' task roles (ECS_BOT_TASK_ROLE_ARNS) and the
    # STS endpoint their presigned GetCallerIdentity is sent to.
    bot_task_roles: tuple[TaskRole, ...] = ()
    sts_endpoint_url: str = ""
    identity_audience: str | None = None  # what bots' presigns are bound to (x-voicefleet-channel)
    # The task definitions (revision or ARN) the deployment's releases name (RELEASES): their
    # tasks are this deployment's too, whatever family a release's definition has.
    release_task_definitions: tuple[str, ...] = ()
    # ECS_CELLS: the AWS accounts launches spread over (ecs/cells.py); empty: the one account the
    # dispatcher's own credentials reach.
    cells: tuple[EcsCell, ...] = ()
    # One cell's own task definition for each a release names (ECS_CELLS `task_definitions`).
    release_map: tuple[tuple[str, str], ...] = ()

    def for_cell(self, cell: EcsCell) -> EcsSettings:
        """The settings of one cell's account: its own cluster, task definitions and network, else the
        deployment's (a deployment's task definition mapped to the cell's copy, as a release's is)."""
        webrtc = self.task_definition_webrtc and cell.own(self.task_definition_webrtc)
        return replace(
            self, cluster=cell.cluster or self.cluster,
            task_definition=cell.task_definition or cell.own(self.task_definition),
            task_definition_webrtc=cell.task_definition_webrtc or webrtc or None,
            subnets=cell.subnets or self.subnets, security_groups=cell.security_groups or self.security_groups,
            release_task_definitions=tuple(map(cell.own, self.release_task_definitions)),
            release_map=cell.task_definitions, cells=())

    def release_task_definition(self, image: str) -> str:
        """What RunTask is sent for a release's task definition: this account's own (one cell's map)."""
        return dict(self.release_map).get(image, image)

    def check_cells(self) -> EcsSettings:
        """At start-up, not at launch: refuses a cell that names another account's task definition as
        its own (its `task_definition`, `task_definition_webrtc`, or a copy it maps), and a deployment
        task definition no cell can run (every session of the default would be refused). A cell that
        does not map a task definition of another account (a release's, or the deployment's) is
        passed over by its sessions (ecs/cells.py): the copy is made and mapped after the `up` that
        registers the build, so refusing to start would take that `up` back."""
        for cell in self.cells:
            for own, named, key in ((cell.task_definition, "ECS_CELLS", "task_definition"),
                                    (cell.task_definition_webrtc, "ECS_CELLS", "task_definition_webrtc"),
                                    *((mapped, "RELEASES", "task_definitions") for _, mapped in cell.task_definitions)):
                if own:
                    foreign_task_definition(cell, own, named, key)
        for named, task_definition, key in (("ECS_TASK_DEFINITION", self.task_definition, "task_definition"),
                                            ("ECS_TASK_DEFINITION_WEBRTC", self.task_definition_webrtc,
                                             "task_definition_webrtc")):
            if self.cells and task_definition and not any(getattr(cell, key) or cell.runs(task_definition)
                                                          for cell in self.cells):
                raise run_nowhere(self.cells, task_definition, named)
        return self

    @property
    def family(self) -> str:
        """`bot`, `bot:42` or a task definition ARN → `bot` (what ListTasks filters on)."""
        return task_family(self.task_definition)

    @property
    def families(self) -> tuple[str, ...]:
        """Every family this deployment's sessions run as (the WebRTC bot's and the releases' too)."""
        webrtc = task_family(self.task_definition_webrtc) if self.task_definition_webrtc else self.family
        return tuple(dict.fromkeys((self.family, webrtc, *map(task_family, self.release_task_definitions))))

    def task_definition_for(self, transport: str | None) -> str:
        if transport == "webrtc" and self.task_definition_webrtc:
            return self.task_definition_webrtc
        return self.task_definition

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EcsSettings:
        # AWS_REGION is the name to set; the SDKs' older AWS_DEFAULT_REGION is accepted too.
        region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip()
        names = ("AWS_REGION", "ECS_CLUSTER", "ECS_TASK_DEFINITION", "ECS_SUBNETS", "ECS_SECURITY_GROUPS")
        required = require({**env, "AWS_REGION": region}, names, "ecs")
        public_ip = setting_choice(env, "ECS_ASSIGN_PUBLIC_IP")
        return cls(
            region=required["AWS_REGION"],
            cluster=required["ECS_CLUSTER"],
            task_definition=required["ECS_TASK_DEFINITION"],
            subnets=_csv(env, "ECS_SUBNETS", required=True),
            security_groups=_csv(env, "ECS_SECURITY_GROUPS", required=True),
            container_name=setting_text(env, "ECS_CONTAINER_NAME"),
            assign_public_ip=public_ip,
            capacity_providers=parse_capacity_providers(setting_text(env, "ECS_CAPACITY_PROVIDERS")),
            # As the AWS SDKs read them: the service's own variable first, then the global one.
            endpoint_url=env.get("AWS_ENDPOINT_URL_ECS", "").strip() or env.get("AWS_ENDPOINT_URL", "").strip() or None,
            connect_timeout=setting_float(env, "ECS_CONNECT_TIMEOUT_SECONDS"),
            read_timeout=setting_float(env, "ECS_READ_TIMEOUT_SECONDS"),
            retry_deadline=setting_float(env, "ECS_RETRY_DEADLINE_SECONDS"),
            poll_seconds=setting_float(env, "ECS_POLL_SECONDS"),
            run_task_rate=Rate.from_env(env, "ECS_RUN_TASK"),
            task_definition_webrtc=setting_text(env, "ECS_TASK_DEFINITION_WEBRTC") or None,
            bot_task_roles=task_roles(setting_text(env, "ECS_BOT_TASK_ROLE_ARNS")),
            sts_endpoint_url=sts_endpoint(env, required["AWS_REGION"]),
            identity_audience=identity_audience(env),
            release_task_definitions=release_references(env),
            cells=ecs_cells(setting_text(env, "ECS_CELLS")),
        ).check_cells()


def task_family(task_definition: str) -> str:
    return task_definition.rsplit("/", 1)[-1].split(":", 1)[0]
