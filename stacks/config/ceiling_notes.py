"""What the plan, a preview and `voicefleet config check --stack` say of a stack's concurrency ceiling
(stacks/config/ceiling.py): a note with the ceiling and what sets it, and a warning for each quota
`maxConcurrentSessions` (with the reserve's bots, for a cap) goes past, naming the quota, its code, the
figure, and how to see and raise yours. A warning, never a refusal: the account may hold more than
the documented default. The store's ceiling is said beside it (stacks/config/store_ceiling_notes.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from dispatcher.machines.ecs.cell_settings import ecs_cells as parse_ecs_cells
from dispatcher.settings import SettingsError
from stacks.config import (
    aci_cells,
    ceiling,
    ceiling_cells,
    cloud_quotas,
    cloud_run,
    ecs_cells,
    gce_cells,
    k8s_cells,
    store_ceiling_notes,
)
from stacks.config import cells as stack_cells
from stacks.config.ceiling import (
    CALL_MINUTES_KEY,
    FARGATE_SPOT_VCPU_QUOTA_CODE,
    FARGATE_VCPU_QUOTA_CODE,
    READ,
    STATED,
    Ceiling,
)
from stacks.config.cloud_run import DEFAULT_EXECUTION_QUOTA, EXECUTION_QUOTA_KEY, MAX_EXECUTION_QUOTA
from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES, derived
from stacks.config.k8s import millicores
from stacks.config.model import AwsSettings, GcpSettings, Settings
from stacks.config.quota_reads import Refused, refused_warning, settled
from stacks.config.reader import DEFAULTS, NAMESPACE, Reader

MAX_CALL_MINUTES = 24 * 60
# true: a preview reads the account's quota where the provider's Pulumi package can (AWS Service Quotas, GCP
# Cloud Quotas; Azure's has no function for Container Instances' usages).
ACCOUNT_QUOTAS_KEY = "accountQuotas"
SERVICE_QUOTA_READ = "aws:servicequotas/getServiceQuota:getServiceQuota"  # pulumi_aws servicequotas.get_service_quota
# What each read needs, said when it is refused.
SERVICE_QUOTAS_NEEDS = ("Give the deployer servicequotas:GetAWSDefaultServiceQuota and servicequotas:GetServiceQuota "
                        "(the provider's data source calls both)")
CLOUD_QUOTAS_NEEDS = ("Turn on the Cloud Quotas API in the stack's project and in the credential's quota project "
                      "(`gcloud services enable cloudquotas.googleapis.com`) and give the deployer "
                      "cloudquotas.quotas.get")


def said(found: Ceiling, sessions: int, reserve: int) -> tuple[str, list[str]]:
    """The note and the warnings for `sessions` at once beside `reserve` reserve bots."""
    if not found.limits:  # nothing counted (a cluster whose CPU is not stated): what the stack needs is said
        return (f"concurrency ceiling ({found.provider}, {found.where}): not counted. {'. '.join(found.needs)}", [])
    binding = found.binding(reserve)
    each = "; ".join(f"{limit.figure_said()}: {limit.how} = {limit.sessions(reserve):,} sessions"
                     + ("" if limit.rate or not reserve else f" beside reserveMaxIdle={reserve}")
                     for limit in found.limits)
    note = (f"concurrency ceiling ({found.provider}, {found.where}): {found.sessions(reserve):,} sessions at once, "
            f"set by the {binding.quota} (docs/operations.md, \"Your ceiling and how to raise it\"). {each}")
    note += "".join(f". {need}" for need in found.needs)
    warnings = []
    for limit in found.limits:
        if sessions <= limit.sessions(reserve):
            continue
        asked = (f"maxConcurrentSessions={sessions:,}" if limit.rate or not reserve
                 else f"maxConcurrentSessions={sessions:,} + reserveMaxIdle={reserve:,} = {sessions + reserve:,} bots")
        needed = limit.needed(sessions, reserve)
        warnings.append(
            f"{asked} is above the {limit.figure_said()} in {found.where}, which holds {limit.sessions(reserve):,} "
            f"sessions at once ({limit.how}), and the stack needs {needed} {limit.unit}: past it launches are "
            f"refused or wait, and sessions fail to start. Yours: {limit.show}. Raise it: "
            f"{limit.raise_it.format(needed=needed)}; or lower maxConcurrentSessions")
    return note, warnings


def of_settings(cfg: Reader, settings: Settings) -> Ceiling | None:
    """The program's: the stack's provider and bot size from its validated settings."""
    minutes = cfg.integer(CALL_MINUTES_KEY, minimum=1, maximum=MAX_CALL_MINUTES)
    if (aws := settings.aws) is not None:
        if aws.ecs_cells:
            return ceiling_cells.fargate_cells(ceiling_cells.accounts(ecs_cells.listed(aws.ecs_cells)), aws.region,
                                               aws.bot_cpu, minutes, spot=ceiling.spot_share(aws.capacity_providers))
        return _fargate(aws, minutes, ceiling.FargateQuotas())
    if settings.azure is not None:
        if subscriptions := aci_cells.listed(settings.azure.aci_cells):
            return ceiling_cells.aci_cells(subscriptions, settings.azure.bot_cpu, minutes)
        return ceiling.aci(settings.azure.location, settings.azure.bot_cpu, minutes)
    if settings.gcp is not None:
        gcp = settings.gcp
        if gcp.bot_runtime == "cloudrun":
            quota = cfg.integer(EXECUTION_QUOTA_KEY, minimum=1, maximum=MAX_EXECUTION_QUOTA)
            caps = [cell.max_executions for cell in cloud_run.listed(gcp.cloud_run_cells, gcp.region)]
            return ceiling.cloud_run(gcp.project, gcp.region, minutes, quota,
                                     origin=STATED if cfg.optional(EXECUTION_QUOTA_KEY) is not None else "", caps=caps)
        if gcp.gce_cells:
            return _cells_ceiling(cfg, settings, gcp, {})
        return ceiling.gce(gcp.project, gcp.region, gcp.bot_machine_type, minutes,
                           settings.max_concurrent_sessions, reserve=reserve_bots(settings))
    if (k8s := settings.kubernetes) is not None:
        if k8s.cells:
            return ceiling_cells.k8s_cells([stacked.cell for stacked in k8s.cells], settings.max_concurrent_sessions,
                                           reserve=reserve_bots(settings))
        return ceiling.kubernetes(k8s.bot_namespace, k8s.bot_millicores, settings.max_concurrent_sessions,
                                  k8s.allocatable_millicores, reserve=reserve_bots(settings),
                                  runtime_class=k8s.runtime_class, overhead_millicores=k8s.overhead[0])
    return None


def _fargate(aws: AwsSettings, minutes: int, quotas: ceiling.FargateQuotas) -> Ceiling:
    return ceiling.fargate(aws.region, aws.bot_cpu, minutes, quotas, spot=ceiling.spot_share(aws.capacity_providers),
                           dispatchers=ceiling.Dispatchers(aws.dispatcher_count, aws.dispatcher_cpu))


def _cell_places(gcp: GcpSettings) -> tuple[gce_cells.CellPlace, ...]:
    return gce_cells.places(gce_cells.listed(gcp.gce_cells, gcp.zone), gcp.zone)


def reserve_bots(settings: Settings) -> int:
    """The reserve's bots at most: none without the bot channel (no warm reserve then). Over cells (ECS,
    Compute Engine, ACI, Cloud Run, Kubernetes) the reserve spreads over them, each cell's share among its own
    machines: the shares together are reserveMaxIdle, counted against the cells' capacity together as in one place."""
    if settings.secrets.bot_channel_token is None:
        return 0
    return settings.reserve.max_idle


# The stack's quota read, made once its explicit provider exists (Pulumi.yaml disables the default ones, and the
# engine refuses an invoke through a disabled default provider): the invoke's options name that provider.
QuotaRead = Callable[[pulumi.InvokeOutputOptions], object]


def check(cfg: Reader, settings: Settings) -> QuotaRead | None:
    """The plan and a preview: the note, and a warning for each quota the stack goes past. With
    `accountQuotas`, on AWS the account's Fargate vCPU quota as Service Quotas answers the preview, and on
    GCP's Compute Engine the region's CPUS quota as Cloud Quotas does: returned as the read the stack makes
    with its provider, which says the note once answered."""
    # The store's ceiling beside it: the sessions started a day it holds (stacks/config/store_ceiling_notes.py).
    store_ceiling_notes.log(settings, cfg.integer(CALL_MINUTES_KEY, minimum=1, maximum=MAX_CALL_MINUTES))
    found = of_settings(cfg, settings)
    if found is None:
        return None
    # With ecsCells the bots run in the cells' accounts, whose quotas the stack's credentials cannot read: the
    # ceiling counts their documented defaults and says so (stacks/config/ceiling_cells.py).
    if (aws := settings.aws) is not None and not aws.ecs_cells and cfg.boolean(ACCOUNT_QUOTAS_KEY):
        minutes = cfg.integer(CALL_MINUTES_KEY, minimum=1, maximum=MAX_CALL_MINUTES)
        codes = [FARGATE_VCPU_QUOTA_CODE]
        if ceiling.spot_share(aws.capacity_providers) > 0:
            codes.append(FARGATE_SPOT_VCPU_QUOTA_CODE)

        def read(values: list[float | Refused | None]) -> None:
            for code, value in zip(codes, values, strict=True):
                if isinstance(value, Refused):
                    what = f"the Fargate vCPU quota {code} from Service Quotas in {aws.region}"
                    pulumi.log.warn(refused_warning(what, value, SERVICE_QUOTAS_NEEDS))
            # Each quota on its own: one refused (or unanswered, as under the offline plan's mocks) counts its
            # documented default, and the other its value read.
            answers = dict(zip(codes, values, strict=True))
            on_demand, on_demand_origin = _read_or(answers.get(FARGATE_VCPU_QUOTA_CODE), ceiling.FARGATE_VCPU_DEFAULT)
            spot, spot_origin = _read_or(answers.get(FARGATE_SPOT_VCPU_QUOTA_CODE), ceiling.FARGATE_SPOT_VCPU_DEFAULT)
            quotas = ceiling.FargateQuotas(on_demand, spot, origin=on_demand_origin, spot_origin=spot_origin)
            return _log(_fargate(aws, minutes, quotas), settings)

        return lambda invoke: pulumi.Output.all(
            *(account_vcpu_quota(aws.region, code, invoke) for code in codes)).apply(read)
    if (gcp := settings.gcp) is not None and gcp.gce_cells and cfg.boolean(ACCOUNT_QUOTAS_KEY):
        return _cells_cpu_read(cfg, settings, gcp)
    if (gcp := settings.gcp) is not None and gcp.bot_runtime != "cloudrun" and cfg.boolean(ACCOUNT_QUOTAS_KEY):
        quota_id = ceiling.GCE_CPU_QUOTA_IDS.get(ceiling.gce_cpu_metric(gcp.bot_machine_type))
        if quota_id is not None:
            minutes = cfg.integer(CALL_MINUTES_KEY, minimum=1, maximum=MAX_CALL_MINUTES)

            def read_cpus(value: float | Refused | None) -> None:
                if isinstance(value, Refused):
                    pulumi.log.warn(refused_warning(f"Compute Engine's {quota_id} quota from Cloud Quotas for project "
                                                    f"{gcp.project}", value, CLOUD_QUOTAS_NEEDS))
                if value is None or isinstance(value, Refused):  # or the offline plan's mocks answer nothing
                    return _log(found, settings)  # what the stack needs is said
                return _log(ceiling.gce(gcp.project, gcp.region, gcp.bot_machine_type, minutes,
                                        settings.max_concurrent_sessions, reserve=reserve_bots(settings),
                                        cpu_quota=value),
                            settings)

            return lambda invoke: cloud_quotas.region_quota(gcp.project, gcp.region, quota_id, invoke).apply(read_cpus)
    _log(found, settings)
    return None


def _cells_cpu_read(cfg: Reader, settings: Settings, gcp: GcpSettings) -> QuotaRead | None:
    """`gceCells` with `accountQuotas`: each cell's project's CPU quota in its region, as Cloud Quotas answers
    the preview; a cell's read refused is said, and the ceiling then says what the cells need instead."""
    quota_id = ceiling.GCE_CPU_QUOTA_IDS.get(ceiling.gce_cpu_metric(gcp.bot_machine_type))
    if quota_id is None:  # a family whose quota id is undocumented: nothing read, what is needed said
        _log(_cells_ceiling(cfg, settings, gcp, {}), settings)
        return None
    places = _cell_places(gcp)

    def read(values: list[float | Refused | None]) -> None:
        for place, value in zip(places, values, strict=True):
            if isinstance(value, Refused):
                pulumi.log.warn(refused_warning(f"Compute Engine's {quota_id} quota from Cloud Quotas for cell "
                                                f"{place.name}'s project {place.project}", value, CLOUD_QUOTAS_NEEDS))
        found = {place.name: value for place, value in zip(places, values, strict=True)
                 if value is not None and not isinstance(value, Refused)}
        return _log(_cells_ceiling(cfg, settings, gcp, found), settings)

    return lambda invoke: pulumi.Output.all(*(cloud_quotas.region_quota(place.project, place.region, quota_id, invoke)
                                              for place in places)).apply(read)


def _cells_ceiling(cfg: Reader, settings: Settings, gcp: GcpSettings, read: Mapping[str, float]) -> Ceiling:
    """The cells' ceiling with the CPU quotas `read` (by cell name)."""
    minutes = cfg.integer(CALL_MINUTES_KEY, minimum=1, maximum=MAX_CALL_MINUTES)
    cells = [ceiling_cells.CellQuota(place, read.get(place.name)) for place in _cell_places(gcp)]
    return ceiling_cells.gce_cells(cells, gcp.bot_machine_type, minutes, settings.max_concurrent_sessions,
                                   reserve=reserve_bots(settings))


def _read_or(value: float | Refused | None, default: float) -> tuple[float, str]:
    """A quota's figure and origin: the value read (READ), else the documented default ("")."""
    return (default, "") if value is None or isinstance(value, Refused) else (float(value), READ)


def account_vcpu_quota(region: str, code: str,
                       invoke: pulumi.InvokeOutputOptions) -> pulumi.Output[float | Refused | None]:
    """The account's Fargate vCPU quota `code` in `region`, read by the preview through the stack's provider
    (`invoke`). The provider's data source calls servicequotas:GetAWSDefaultServiceQuota, then
    GetServiceQuota: without both the read is `Refused` and the default stands (docs/pulumi.md,
    accountQuotas). Under the offline plan's mocks nothing answers: None."""

    def value(answer: Mapping[str, Any]) -> float | None:
        found = answer.get("value")
        return None if found is None else float(found)

    return settled(SERVICE_QUOTA_READ, {"serviceCode": "fargate", "quotaCode": code, "region": region}, invoke, value)


def _log(found: Ceiling, settings: Settings) -> None:
    note, warnings = said(found, settings.max_concurrent_sessions, reserve_bots(settings))
    pulumi.log.info(note)
    for warning in warnings:
        pulumi.log.warn(warning)


def stack_notes(config: Mapping[str, str]) -> list[str]:
    """`voicefleet config check --stack`: the same note and warnings from the stack file's keys (full
    names, as text), a size's or profile's derived values and the defaults standing in for unset ones.
    A value the program would refuse says nothing here: the check names it."""
    if config.get(f"{NAMESPACE}:role") == "frontDoor":
        return []  # a front door runs no bots
    size, profile = config.get(f"{NAMESPACE}:size"), config.get(f"{NAMESPACE}:profile")
    from_size = derived(size if size in SIZE_NAMES else None, profile if profile in PROFILE_NAMES else None,
                        cloud=config.get(f"{NAMESPACE}:cloud", ""))

    def value(key: str) -> str:
        return config.get(f"{NAMESPACE}:{key}") or from_size.get(key, (str(DEFAULTS.get(key, "")), "default"))[0]

    def number(key: str) -> int | None:
        text = value(key)
        return int(text) if text.isdigit() and int(text) > 0 else None

    sessions, reserve, minutes = number("maxConcurrentSessions"), number("reserveMaxIdle"), number(CALL_MINUTES_KEY)
    if sessions is None or minutes is None or minutes > MAX_CALL_MINUTES:
        return []
    channel = f"{NAMESPACE}:botChannelToken" in config or value("botChannel").lower() == "true"
    # No reserve without the channel; over cells it runs, counted as `reserve_bots` counts it.
    reserve = (reserve or 0) if channel else 0
    found = _of_config(config, value, number, minutes, sessions, reserve)
    if found is None:
        return []
    note, warnings = said(found, sessions, reserve)
    # The store's ceiling after it, from the same values (a stack file whose cells the check refuses says neither).
    store = store_ceiling_notes.stack_notes(value, number, sessions, minutes, channel=channel)
    return [f"note: {note}", *(f"warning: {warning}" for warning in warnings), *store]


def _of_config(config: Mapping[str, str], value: Callable[[str], str], number: Callable[[str], int | None],
               minutes: int, sessions: int, reserve: int) -> Ceiling | None:
    cloud = value("cloud")
    if cloud == "aws" and (cpu := number("botCpu")) is not None:
        dispatchers = ceiling.Dispatchers(number("dispatcherCount") or 1, number("dispatcherCpu") or 256)
        try:
            spot = ceiling.spot_share(value("ecsCapacityProviders") or "FARGATE")
        except SettingsError:
            return None  # the check names the value
        region = config.get("aws:region", "<region>")
        if (accounts := stack_cells.from_file(value(ecs_cells.CELLS_KEY), parse_ecs_cells)) is None:
            return None  # the check names the value
        if accounts:
            return ceiling_cells.fargate_cells(ceiling_cells.accounts(accounts), region, cpu, minutes, spot=spot)
        return ceiling.fargate(region, cpu, minutes, spot=spot, dispatchers=dispatchers)
    if cloud == "azure" and (cpu := number("botCpu")) is not None:
        if (subscriptions := aci_cells.from_file(value(aci_cells.CELLS_KEY))) is None:
            return None  # the check names the value
        if subscriptions:
            return ceiling_cells.aci_cells(subscriptions, cpu, minutes)
        return ceiling.aci(config.get("azure-native:location", "<location>"), cpu, minutes)
    if cloud == "k8s" and not stack_cells.none_listed(listed := value(k8s_cells.CELLS_KEY)):
        if (clusters := k8s_cells.from_file(listed, value("k8sBotNamespace"))) is None:
            return None  # the check names the value
        return ceiling_cells.k8s_cells(clusters, sessions, reserve=reserve)
    if cloud == "k8s" and (bot := millicores(value("k8sBotCpu") or "1")) is not None:
        stated = value(ceiling.K8S_ALLOCATABLE_KEY)
        nodes = millicores(stated)
        overhead = millicores(value(ceiling.K8S_OVERHEAD_KEY) or "0", zero=True)
        if (stated and nodes is None) or overhead is None:
            return None  # the check names the value
        return ceiling.kubernetes(value("k8sBotNamespace"), bot, sessions, nodes, reserve=reserve,
                                  runtime_class=value("k8sRuntimeClass") or None,
                                  overhead_millicores=overhead)
    if cloud != "gcp":
        return None
    project, region = config.get("gcp:project", "<project>"), config.get("gcp:region", "<region>")
    if value("botRuntime") == "cloudrun":
        quota = number(EXECUTION_QUOTA_KEY) or DEFAULT_EXECUTION_QUOTA
        if (cells := cloud_run.cells_listed(value(cloud_run.CELLS_KEY), region)) is None:
            return None  # the check names the value
        return ceiling.cloud_run(project, region, minutes, quota, caps=[cell.max_executions for cell in cells],
                                 origin=STATED if f"{NAMESPACE}:{EXECUTION_QUOTA_KEY}" in config else "")
    machine_type = value("botMachineType") or "e2-small"
    if (places := gce_cells.places_listed(value(gce_cells.CELLS_KEY), value("gcpZone") or f"{region}-a")) is None:
        return None  # the check names the value
    if places:
        return ceiling_cells.gce_cells([ceiling_cells.CellQuota(place) for place in places], machine_type, minutes,
                                       sessions, reserve=reserve)
    return ceiling.gce(project, region, machine_type, minutes, sessions, reserve=reserve)
