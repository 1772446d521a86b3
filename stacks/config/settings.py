"""Typed, validated stack settings: the only module that reads Pulumi config.

Every key is declared (type, description, default) in Pulumi.yaml; the same defaults live in
stacks/config/reader.py DEFAULTS, because offline runs do not see Pulumi.yaml. A bad value fails
the whole program with ONE message that names the key, before any resource is registered.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any

import pulumi

from dispatcher.regions.config import ACCEPTED_SECRET_VARIABLE as REGION_ACCEPTED_SECRET_VARIABLE
from dispatcher.reserve.policy import ReserveSettings
from stacks.config import (
    admin_keys,
    alarms,
    bot_env_reads,
    bot_permissions,
    bot_plain_env,
    bot_session_caps,
    calling_out,
    calling_out_telnyx,
    ceiling_notes,
    channel_capacity,
    cloud_run,
    ecs_cells,
    gce_cells,
    k8s_registry,
    limits,
    load_balancer_https,
    made_secrets,
    phone_transfers,
    plivo_account,
    stack_keys,
    store_ceiling_notes,
    switches,
    whatsapp,
)
from stacks.config import azure as azure_settings
from stacks.config import bot as bot_settings
from stacks.config import channel as channel_settings
from stacks.config import k8s as k8s_settings
from stacks.config import observability as observability_settings
from stacks.config import phone as phone_settings
from stacks.config import recording as recording_settings
from stacks.config import regions as region_settings
from stacks.config import releases as release_settings
from stacks.config import reserve as reserve_settings
from stacks.config import sip_edge as sip_edge_settings
from stacks.config import store as store_settings
from stacks.config import turn as turn_settings
from stacks.config.bot_env import OTLP_HEADERS
from stacks.config.model import AwsSettings, AzureSettings, GcpSettings, Secrets, Settings
from stacks.config.reader import DEFAULTS, NAMESPACE, Reader, SettingsError
from stacks.config.trunk_invite_regions import warn_invite_spacing

__all__ = ["DEFAULTS", "NAMESPACE", "AwsSettings", "AzureSettings", "GcpSettings", "Secrets", "Settings",
           "SettingsError", "load"]


CLOUDS = ("aws", "gcp", "azure", "k8s")
# Each cloud's machines provider in the dispatcher (MACHINES): the reserve's cold-start default follows it.
MACHINES = {"aws": "ecs", "gcp": "gce", "azure": "aci", "k8s": "k8s"}
BOT_RUNTIMES = ("gce", "cloudrun")  # GCP's botRuntime: the dispatcher's MACHINES is the same word

# The tool and cloud tables (Fargate sizes, retention periods, …) live in stacks/config/limits.py.

# Stack names become parts of physical names (ECR repositories, GCP ids, ALB and Cloud Run names):
# lowercase, and short enough that every generated name fits its cloud's limit
# (stacks/tools/preflight/names.py checks that for a stack name of this maximum length).
MAX_STACK_NAME = 20
# No "--": GCP bot VMs are named `vf-<stack>--<id>` and their IAM conditions match that prefix, which
# no other stack's VM name can then start with (stacks/gcp/naming.py instance_prefix).
_STACK_NAME = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-))*(?<!-)$")
# Secrets Manager recovery window: 0 (delete now, dev) or 7..30 days.
_CAPACITY_PROVIDERS = re.compile(r"^(FARGATE|FARGATE_SPOT)(:\d+)?(,(FARGATE|FARGATE_SPOT)(:\d+)?)*$")
# GCP label values and resource ids: lowercase letters, digits, dashes.
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Optional provider keys for the bot's STT/LLM/TTS: config key -> env name.
BOT_SECRET_KEYS: dict[str, str] = {
    "deepgramApiKey": "DEEPGRAM_API_KEY",
    "cartesiaApiKey": "CARTESIA_API_KEY",
    "openaiApiKey": "OPENAI_API_KEY",
}
REQUIRED_SECRET_KEYS: dict[str, str] = {
    "dailyApiKey": "DAILY_API_KEY",
    "dispatcherApiKeys": "DISPATCHER_API_KEYS",
    admin_keys.KEY: admin_keys.VARIABLE,
}



def valid_stack_name(stack: str) -> bool:
    return len(stack) <= MAX_STACK_NAME and bool(_STACK_NAME.match(stack))


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the current stack's configuration (raises SettingsError)."""
    environ = os.environ if environ is None else environ
    cfg = Reader(NAMESPACE)
    given = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    try:
        settings = _load(cfg, environ)
    except SettingsError as error:  # a misspelt key may be why: say so beside the error it led to
        if misspelt := stack_keys.unknown(given, cfg.read, misspelt_only=True):
            raise SettingsError(f"{error}; " + "; ".join(misspelt)) from None
        raise
    if misspelt := stack_keys.unknown(given, cfg.read) + stack_keys.of_another_cloud(given, settings.cloud):
        raise SettingsError("Invalid stack configuration: " + "; ".join(misspelt))
    return settings


def _load(cfg: Reader, environ: Mapping[str, str]) -> Settings:
    cloud = cfg.string("cloud", choices=CLOUDS, required=True)
    stack = pulumi.get_stack()
    if not valid_stack_name(stack):
        raise SettingsError(f"Invalid stack name {stack!r}: use at most {MAX_STACK_NAME} lowercase letters, digits "
                            "and single dashes, starting with a letter (it is part of cloud resource names with tight "
                            "limits, and '--' separates it from the rest of a bot VM's name)")
    environment = cfg.string("environment", pattern=_LABEL)
    max_session_seconds = cfg.integer("maxSessionSeconds", minimum=30)
    platforms = cfg.string_list("platforms")
    for platform in platforms:
        if not re.match(r"^linux/(amd64|arm64)$", platform):
            raise cfg.fail("platforms", f"entries must be linux/amd64 or linux/arm64 (got {platform!r})")

    observability, observability_secrets = observability_settings.load(cfg)
    regions, region_secret = region_settings.load(cfg)
    rotation = made_secrets.rotation(cfg)
    client_keys = _require(cfg.secret("dispatcherApiKeys", required=True))
    secrets = Secrets(
        daily_api_key=_require(cfg.secret("dailyApiKey", required=True)),
        dispatcher_api_keys=client_keys,
        dispatcher_admin_keys=admin_keys.load(cfg, client_keys),
        bot=bot_settings.secrets(cfg, BOT_SECRET_KEYS),
        bot_channel_token=channel_settings.token(cfg, rotation),
        store_password=store_settings.password(cfg),
        store_previous_password=store_settings.previous_password(cfg),
        store_message_secret=store_settings.message_secret(cfg),
        store_accepted_message_secret=store_settings.accepted_message_secret(cfg),
        phone=phone_settings.secrets(cfg),
        observability=observability_secrets,
        region_secret=region_secret,
        region_accepted_secret=region_settings.accepted_secret(cfg, regions),
    )
    bot_settings.check_names_apart(cfg, secrets.bot, _stack_secret_keys(secrets))
    extra_tags = cfg.structured("tags") or {}
    if not isinstance(extra_tags, dict):
        raise cfg.fail("tags", "must be a map of strings")
    tags = {"project": NAMESPACE, "stack": stack, "environment": environment, "managed-by": "pulumi",
            **{str(k): str(v) for k, v in extra_tags.items()}}

    settings = Settings(
        project=pulumi.get_project(),
        stack=stack,
        cloud=cloud,
        environment=environment,
        protect=cfg.boolean("protect"),
        max_concurrent_sessions=cfg.integer("maxConcurrentSessions", minimum=1, maximum=10_000),
        max_session_seconds=max_session_seconds,
        dispatcher_memory=cfg.integer("dispatcherMemory", minimum=512),
        platforms=platforms,
        build_on_preview=cfg.boolean("buildOnPreview"),
        source_revision=_revision_tag(cfg, cfg.optional("sourceRevision") or environ.get("VOICEFLEET_SOURCE_REVISION")
                                      or ""),
        image_retention_count=cfg.integer("imageRetentionCount", minimum=1, maximum=1000),
        drain=cfg.boolean("drain"),
        tags=tags,
        secrets=secrets,
        turn=turn_settings.load(cfg, rotation),
        sip_edge=sip_edge_settings.load(cfg, cloud, client_keys, rotation, platforms),
        reserve=_reserve(cfg, cloud),
        # A k8s stack without k8sRegistry runs images built elsewhere (stacks/config/k8s_registry.py): no bot
        # project to build.
        bot_project=None if cloud == "k8s" and not k8s_registry.builds_images(cfg) else bot_settings.project(cfg),
        bot_permissions=bot_permissions.load(cfg, cloud),
        observability=observability,
        regions=regions,
        releases=release_settings.load(cfg),
        recording=recording_settings.load(cfg, cloud),
        recording_remove_store=recording_settings.remove_store(cfg),
        switches=switches.load(cfg),
        phone=_phone(cfg, secrets),
    )
    channel_settings.check(cfg, settings)
    turn_settings.warn_if_short(settings.turn, settings.max_concurrent_sessions)
    warn_invite_spacing(settings.sip_edge, settings.regions)
    bot_settings.check(cfg, settings, takes_calls=bool(set(settings.secrets.phone) & phone_settings.CALL_CREDENTIALS),
                       drain=settings.drain)
    bot_plain_env.check_names_apart(cfg, settings)
    bot_env_reads.check(cfg, settings)
    if not channel_settings.enabled(settings):  # said by the program, so the plan and a preview show it
        pulumi.log.warn(channel_settings.cold_starts(
            MACHINES[cloud] if cloud != "gcp" else cfg.string("botRuntime", choices=BOT_RUNTIMES),
            settings.reserve.cold_start_seconds, plain_http=cloud == "aws" and cfg.boolean("allowPlainHttp")))
    bot_session_caps.check(settings)
    if cloud == "aws":
        # ECR keeps the newest imageRetentionCount releases' bot images by their tag (stacks/aws/registry.py).
        release_settings.check_images_kept(cfg, settings.releases, settings.image_retention_count)
        aws = _aws(cfg, settings)
        settings, store, password = _with(settings, aws=aws), aws.store, True
    elif cloud == "azure":
        azure = azure_settings.load(cfg, settings)
        settings, store, password = _with(settings, azure=azure), azure.store, False
    elif cloud == "k8s":
        # Its replicas always share a store; the stack's own Valkey signs in with a password.
        kubernetes = k8s_settings.load(cfg, settings)
        settings, store, password = _with(settings, kubernetes=kubernetes), True, kubernetes.store_url is None
    else:
        gcp = _gcp(cfg, settings)  # Memorystore: IAM sign-in, no password
        settings, store, password = _with(settings, gcp=gcp), gcp.store, False
    # A roll keeps the made message secret and password of the generation it replaces: the next `up` checks its step.
    rolls = store and (settings.secrets.store_message_secret is None
                       or (password and settings.secrets.store_password is None))
    settings = _with(settings, secrets=store_settings.with_made(cfg, settings.secrets, rotation, store=store,
                                                                password=password),
                     secrets_rotation=rotation.output(rolls), secrets_ready=rotation.ready)
    # The provider's quotas against the sessions: said, not refused; an account's read waits for the stack's provider.
    return _with(settings, quota_read=ceiling_notes.check(cfg, settings))


def _phone(cfg: Reader, secrets: Secrets) -> dict[str, str]:
    """The plain phone settings the stack sets: WhatsApp's numbers (with its secrets, all or none), the
    settings of calls placed through Twilio and Telnyx, where and how long calls may be transferred, and the
    number a Daily transfer's person sees."""
    found = calling_out.load(cfg, secrets.phone, secrets.dispatcher_api_keys)
    found |= calling_out_telnyx.load(cfg, secrets.phone, secrets.dispatcher_api_keys)
    found |= plivo_account.load(cfg, secrets.phone)
    found |= phone_settings.plain(cfg)
    found |= phone_transfers.load(cfg)
    if (numbers := whatsapp.numbers(cfg, secrets.phone)) is not None:
        found[whatsapp.NUMBERS_VARIABLE] = numbers
    return found


def _stack_secret_keys(secrets: Secrets) -> dict[str, str]:
    """The stack's own secrets that are set and whose variable a bot's name may be (the others' are
    refused for a bot anyway: DISPATCHER_*, TURN_*, REDIS_*, BOT_*, WEBHOOK_SECRET), variable -> key."""
    keys = {env: key for key, env in phone_settings.PHONE_SECRET_KEYS.items() if env in secrets.phone}
    keys |= {env: key for env, key in ((OTLP_HEADERS, "otelExporterOtlpHeaders"),
                                       (observability_settings.WEBHOOK_SECRET, "webhookSecret"))
             if env in secrets.observability}
    keys |= {env: key for env, key, value in (
        ("REGION_SECRET", region_settings.SECRET_KEY, secrets.region_secret),
        (REGION_ACCEPTED_SECRET_VARIABLE, region_settings.ACCEPTED_SECRET_KEY, secrets.region_accepted_secret))
        if value is not None}
    return keys


def _reserve(cfg: Reader, cloud: str) -> ReserveSettings:
    """The reserve's sizing, its cold-start prior the bots' own: on GCP `botRuntime` picks the
    provider, and a Cloud Run bot's prior includes what the stack's network adds to it."""
    if cloud == "gcp" and cfg.string("botRuntime", choices=BOT_RUNTIMES) == "cloudrun":
        # The bot job always leaves through the bots' subnetwork and its Cloud NAT (stacks/gcp/bot_job.py).
        prior = cloud_run.cold_start_prior(direct_vpc_nat=True)
        return reserve_settings.load(cfg, "cloudrun", cold_start_seconds=prior)
    return reserve_settings.load(cfg, MACHINES[cloud])


def _revision_tag(cfg: Reader, revision: str) -> str:
    """Part of a registry tag, `rev-<revision>`: a tag is at most 128 of [A-Za-z0-9_.-] (OCI
    distribution spec), so the revision at most 124."""
    if revision and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,123}", revision):
        raise cfg.fail("sourceRevision", f"must be a registry tag ([A-Za-z0-9_.-], at most 124; got {revision!r})")
    return revision


def _require(value: pulumi.Output[str] | None) -> pulumi.Output[str]:
    assert value is not None  # `required=True` raised already
    return value


def _with(settings: Settings, **changes: Any) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)


def _cidr(cfg: Reader, name: str, value: str) -> str:
    try:
        return str(ipaddress.ip_network(value))
    except ValueError:
        raise cfg.fail(name, f"must be an IPv4 CIDR block like 10.0.0.0/16 (got {value!r})") from None


def _fargate_size(cfg: Reader, cpu_key: str, memory_key: str, cpu: int, memory: int) -> None:
    if cpu not in limits.FARGATE_MEMORY:
        allowed = ", ".join(str(c) for c in limits.FARGATE_MEMORY)
        raise cfg.fail(cpu_key, f"must be a Fargate CPU size ({allowed}; 1024 = 1 vCPU), got {cpu}")
    options = limits.FARGATE_MEMORY[cpu]
    if memory not in options:
        shown = ", ".join(str(m) for m in options) if len(options) <= 4 else (
            f"{options[0]}..{options[-1]} in steps of {options[1] - options[0]}")
        raise cfg.fail(memory_key, f"must be one of Fargate's sizes for {cpu_key}={cpu}: {shown} MiB (got {memory})")


def _aws(cfg: Reader, settings: Settings) -> AwsSettings:
    region = Reader("aws").string("region", required=True)
    bot_cpu = cfg.integer("botCpu", minimum=1)
    bot_memory = cfg.integer("botMemory", minimum=1)
    _fargate_size(cfg, "botCpu", "botMemory", bot_cpu, bot_memory)
    dispatcher_cpu = cfg.integer("dispatcherCpu", minimum=1)
    _fargate_size(cfg, "dispatcherCpu", "dispatcherMemory", dispatcher_cpu, settings.dispatcher_memory)
    idle = cfg.integer("albIdleTimeoutSeconds", minimum=limits.ALB_IDLE_TIMEOUT[0], maximum=limits.ALB_IDLE_TIMEOUT[1])
    keep_alive = cfg.integer("keepAliveSeconds", minimum=1)
    if keep_alive <= idle:
        # The ALB reuses idle connections; if the app closes first, clients see 502s.
        raise cfg.fail("keepAliveSeconds", f"must be longer than albIdleTimeoutSeconds={idle} (got {keep_alive})")
    certificate_arn = cfg.optional("certificateArn")
    allow_plain_http = cfg.boolean("allowPlainHttp")
    if certificate_arn is None and not allow_plain_http:
        raise cfg.fail("certificateArn", "is required (API keys must not cross the internet in clear text); "
                                         "set allowPlainHttp: true only for a throwaway dev stack")
    load_balancer_https.check(cfg, region, certificate_arn, allow_plain_http)
    retention = cfg.integer("logRetentionDays", minimum=1)
    if retention not in limits.LOG_RETENTION_DAYS:
        raise cfg.fail("logRetentionDays",
                       f"must be one of CloudWatch's periods {limits.LOG_RETENTION_DAYS} (got {retention})")
    recovery = cfg.integer("secretRecoveryDays", minimum=0, maximum=30)
    if 0 < recovery < 7:
        raise cfg.fail("secretRecoveryDays", f"must be 0 or 7..30 (got {recovery})")
    providers = cfg.string("ecsCapacityProviders", pattern=_CAPACITY_PROVIDERS)
    domain = channel_settings.aws_domain(cfg, settings, certificate_arn, idle)
    region_settings.aws_url(cfg, settings.regions, domain)
    count = cfg.integer("dispatcherCount", minimum=1, maximum=100)
    account_cells = ecs_cells.cells(cfg)
    ecs_cells.check_reachable(cfg, account_cells, region)
    cell_bot_roles = ecs_cells.bot_roles(cfg, account_cells, channel=channel_settings.enabled(settings))
    # Several replicas share a store; so do the cells, one replica or more (each session's cell is recorded there),
    # whose store keeps its rotation keys: the replicas' check refuses them only where no store is made.
    store = bool(account_cells) or store_settings.require_for_replicas(cfg, settings, "dispatcherCount", count)
    channel_capacity.aws_limits(cfg, settings, count, dispatcher_cpu)
    return AwsSettings(
        region=region,
        vpc_cidr=_cidr(cfg, "vpcCidr", cfg.string("vpcCidr")),
        az_count=cfg.integer("azCount", minimum=2, maximum=6),
        bot_cpu=bot_cpu,
        bot_memory=bot_memory,
        dispatcher_cpu=dispatcher_cpu,
        dispatcher_count=count,
        store=store,
        store_ecpu_per_second=store_settings.ecpu_per_second(cfg, settings.max_concurrent_sessions) if store else 0,
        store_data_gb=store_ceiling_notes.data_gb(cfg),
        capacity_providers=providers,
        alb_idle_timeout_seconds=idle,
        keep_alive_seconds=keep_alive,
        certificate_arn=certificate_arn,
        allow_plain_http=allow_plain_http,
        dispatcher_domain=domain,
        dispatcher_zone_id=_zone_id(cfg, domain),
        allowed_cidrs=tuple(_cidr(cfg, "allowedCidrs", c) for c in cfg.string_list("allowedCidrs")),
        container_insights=cfg.boolean("containerInsights"),
        log_retention_days=retention,
        secret_recovery_days=recovery,
        alarm_topic_arn=alarms.topic_arn(cfg, region),
        ecs_cells=ecs_cells.cells_setting(account_cells),
        ecs_cell_bot_task_roles=cell_bot_roles,
    )


GCP_PLATFORMS = ("linux/amd64",)


def _gcp(cfg: Reader, settings: Settings) -> GcpSettings:
    gcp = Reader("gcp")
    project = gcp.string("project", required=True)
    region = gcp.string("region", required=True)
    zone = cfg.optional("gcpZone") or f"{region}-a"
    if not zone.startswith(region + "-"):
        raise cfg.fail("gcpZone", f"must be a zone of gcp:region={region} (got {zone!r})")
    if settings.max_session_seconds + limits.GCE_BOOT_GRACE_SECONDS > limits.GCE_MAX_RUN_SECONDS[1]:
        limit = limits.GCE_MAX_RUN_SECONDS[1] - limits.GCE_BOOT_GRACE_SECONDS
        raise cfg.fail("maxSessionSeconds", f"must be at most {limit} on gcp: Compute Engine caps a VM's "
                                            f"run duration at 120 days (got {settings.max_session_seconds})")
    if settings.platforms != GCP_PLATFORMS:
        # Two platforms make each build an index whose platform manifests are untagged versions of
        # their own: the keep-releases rule names the index's digest, and whether Artifact Registry
        # spares the manifests a kept index names from `drop-untagged` is not documented.
        raise cfg.fail("platforms", f"must be {list(GCP_PLATFORMS)} on gcp (got {list(settings.platforms)}): Cloud "
                                    "Run runs linux/amd64 images only (its container runtime contract), and one "
                                    "platform makes each build one manifest, which the registry keeps by its digest "
                                    "while a release names it (stacks/gcp/registry.py); "
                                    "`pulumi config rm platforms`")
    held = limits.AR_VERSIONS_PER_BUILD * limits.AR_BUILDS_HELD_BY_COUNT
    if settings.image_retention_count < held:
        raise cfg.fail("imageRetentionCount", f"must be at least {held} on gcp (got {settings.image_retention_count}): "
                                              f"the registry holds the build an `up` supersedes, a release still "
                                              f"listed, by its newest versions until the next `up` keeps it by "
                                              f"digest, and each build is {limits.AR_VERSIONS_PER_BUILD} versions "
                                              "(image, cache, revision tag)")
    for key, value in settings.tags.items():
        if not _LABEL.match(key) or not re.match(r"^[a-z0-9_-]{0,63}$", value):
            raise cfg.fail("tags", f"{key}={value!r} is not a valid GCP label (lowercase, digits, - and _)")
    minimum = cfg.integer("dispatcherMinInstances", minimum=0, maximum=100)
    maximum = cfg.integer("dispatcherMaxInstances", minimum=1, maximum=1000)
    # Unset, with the channel, they rise to the least the sessions need (stacks/config/derived.py shows it).
    minimum, maximum = channel_settings.unset_instances_risen(
        settings, minimum, maximum, min_set=cfg.raw("dispatcherMinInstances") is not None,
        max_set=cfg.raw("dispatcherMaxInstances") is not None)
    # Before the plain order check: with the channel, one refusal names the least of both.
    channel_settings.cloud_run_limits(cfg, settings, minimum, maximum)
    if settings.regions is not None and minimum < 1:
        # Cloud Run service health, which the front door's load balancer fails a region over by, is
        # computed from the instances kept running (docs/regions.md, "Front door").
        raise cfg.fail("dispatcherMinInstances", "must be at least 1 with regions: the front door learns a region's "
                                                 "health from its running instances' readiness (got 0)")
    if maximum < minimum:
        raise cfg.fail("dispatcherMaxInstances", f"must be at least dispatcherMinInstances={minimum} (got {maximum})")
    bot_runtime = cfg.string("botRuntime", choices=BOT_RUNTIMES)
    cells = cloud_run.cells(cfg, project, region, bot_runtime=bot_runtime)
    vm_cells = gce_cells.cells(cfg, zone, bot_runtime=bot_runtime)
    # Several instances with the channel: bots' channels land on any instance, so they share a store;
    # so do the Cloud Run and Compute Engine cells (each session's project is recorded there).
    store = (channel_settings.enabled(settings) and maximum > 1) or bool(cells) or bool(vm_cells)
    if settings.dispatcher_memory > 32768:
        raise cfg.fail("dispatcherMemory", f"must be at most 32768 MiB on Cloud Run (got {settings.dispatcher_memory})")
    if bot_runtime == "cloudrun" and not channel_settings.enabled(settings):
        # Without the channel, a session's Daily token and body travel in the run's env overrides,
        # which every retained execution shows to anyone with run.executions.get.
        raise cfg.fail("botRuntime", "cloudrun needs the bot channel (pulumi config set botChannel true: the stack "
                                     "makes its token): without it a session's secrets would sit in its execution")
    if bot_runtime == "cloudrun":
        cloud_run.execution_quota(cfg, sessions=settings.max_concurrent_sessions,
                                  reserve_max_idle=settings.reserve.max_idle, cells=cells)
    return GcpSettings(
        project=project,
        region=region,
        zone=zone,
        subnet_cidr=_cidr(cfg, "subnetCidr", cfg.string("subnetCidr")),
        bot_machine_type=cfg.string("botMachineType", pattern=re.compile(r"^[a-z0-9]+-[a-z0-9-]+$")),
        bot_disk_gb=cfg.integer("botDiskGb", minimum=10, maximum=1000),
        dispatcher_min_instances=minimum,
        dispatcher_max_instances=maximum,
        store=store,
        store_node_type=store_ceiling_notes.node_type(cfg, settings.environment),
        alarm_channels=alarms.notification_channels(cfg, project),
        alert_policies=cfg.boolean("alertPolicies"),
        bot_runtime=bot_runtime,
        cloud_run_cells=cloud_run.cells_setting(cells),
        gce_cells=gce_cells.cells_setting(vm_cells),
    )


def _zone_id(cfg: Reader, domain: str | None) -> str | None:
    zone = cfg.optional("dispatcherZoneId")
    if zone is not None and not re.fullmatch(r"Z[A-Z0-9]{1,31}", zone):
        raise cfg.fail("dispatcherZoneId", f"must be a Route 53 hosted zone id like Z0123456789ABCDEF (got {zone!r})")
    if zone is not None and domain is None:
        raise cfg.fail("dispatcherZoneId", "needs dispatcherDomain (the record it writes)")
    return zone
