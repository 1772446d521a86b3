"""What one running bot's machine costs a month, per provider: the hot tier's price, which
`/metrics` multiplies by the hot bots held (`voicefleet_reserve_tier_cost_dollars_per_month`), and
the price a session's machine-seconds are billed at (dispatcher/sessions/cost.py).

List prices, on-demand, a month of 730 hours (docs/reserve.md, "What a reserve costs", says how each
size is read); RESERVE_HOT_DOLLARS_PER_MONTH overrides the result for any provider (a discount, a
region or a size not in the tables).

- ECS Fargate: the task's vCPU and GB × the region's Linux/x86 prices (https://aws.amazon.com/fargate/pricing/);
  a region not in the table is priced as us-east-1, and the log says so.
- Compute Engine: GCE_MACHINE_TYPE as E2 vCPUs and GB × us-central1's E2 prices
  (https://cloud.google.com/compute/vm-instance-pricing); another family is not priced unless overridden.
- Fly: FLY_RUNNING_DOLLARS_PER_MONTH ($8.41 for shared-cpu-4x with 1 GB, the default guest: 4 × a shared
  vCPU's $0.0000008/s, https://fly.io/docs/about/pricing/; bench/fly_cpu_quota.py prints each size's).
- Modal: a Sandbox's cores, GiB and GPUs per second (https://modal.com/pricing, as third parties quote it:
  CPU × 3 for Sandboxes).
- Azure Container Instances: a group's ACI_CPU and ACI_MEMORY_GB × the Linux prices (East US, not yet
  checked against https://azure.microsoft.com/pricing/details/container-instances/).
- Cerebrium (one warm replica of the app: https://docs.cerebrium.ai/calculating-cost) and Cloud Run jobs
  (Tier 1: https://cloud.google.com/run/pricing): no reserve of ours there yet, so the simulator
  (bench/reserve_sim_providers.py) reads them.
- Kubernetes: no list price; the pod's requests × K8S_NODE_*_HOUR_DOLLARS (docs/kubernetes.md).
- Local processes: nothing.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from dispatcher.machines.base import FrozenMachines, Machines
from voicefleet_settings.read import setting_float, setting_text

log = logging.getLogger("dispatcher.reserve.reserve")

HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class ComputePrice:
    """A list price per vCPU-hour and per GB-hour of memory."""

    vcpu_hour: float
    gb_hour: float
    source: str

    def monthly(self, vcpus: float, gb: float) -> float:
        return round((vcpus * self.vcpu_hour + gb * self.gb_hour) * HOURS_PER_MONTH, 2)


FARGATE = {  # Linux/x86, on-demand
    "us-east-1": ComputePrice(0.04048, 0.004445, "https://aws.amazon.com/fargate/pricing/"),
}
FARGATE_FALLBACK_REGION = "us-east-1"
ACI = ComputePrice(0.0000135 * 3600, 0.0000015 * 3600, "https://azure.microsoft.com/pricing/details/container-instances/")
E2 = ComputePrice(0.021811, 0.002923, "https://cloud.google.com/compute/vm-instance-pricing")  # us-central1
# Cerebrium, CPU only (a GPU's own per-second price adds to it): a warm replica of the app.
CEREBRIUM = ComputePrice(0.00000655 * 3600, 0.00000222 * 3600, "https://docs.cerebrium.ai/calculating-cost")
CLOUD_RUN_JOBS = ComputePrice(0.000018 * 3600, 0.000002 * 3600, "https://cloud.google.com/run/pricing")  # Tier 1
E2_SHARED = {"e2-micro": (0.25, 1.0), "e2-small": (0.5, 2.0), "e2-medium": (1.0, 4.0)}  # vCPUs billed, GB
E2_GB_PER_VCPU = {"standard": 4, "highmem": 8, "highcpu": 1}
_E2_SHAPE = re.compile(r"^e2-(standard|highmem|highcpu)-(\d+)$")


MODAL_SOURCE = "https://modal.com/pricing"
MODAL_SANDBOX_CORE_SECOND = 3 * 0.0000131  # a Sandbox's physical core: 3 × a Function's
MODAL_GIB_SECOND = 0.00000222
MODAL_GPU_SECOND = {"T4": 0.000164, "L4": 0.000222, "A10": 0.000306, "A10G": 0.000306, "L40S": 0.000542,
                    "A100": 0.000583, "A100-40GB": 0.000583, "A100-80GB": 0.000694, "H100": 0.001097,
                    "H200": 0.001261, "B200": 0.001736}


def modal_monthly(cores: float, gib: float, gpu: str | None) -> float | None:
    """One Sandbox running a month; None for a GPU type the table does not price."""
    per_second = cores * MODAL_SANDBOX_CORE_SECOND + gib * MODAL_GIB_SECOND
    if gpu:
        kind, _, count = gpu.partition(":")
        if kind not in MODAL_GPU_SECOND:
            return None
        per_second += MODAL_GPU_SECOND[kind] * int(count or 1)
    return round(per_second * 3600 * HOURS_PER_MONTH, 2)


def e2_shape(machine_type: str) -> tuple[float, float] | None:
    """An E2 machine type's billed vCPUs and GB; None for another family."""
    if machine_type in E2_SHARED:
        return E2_SHARED[machine_type]
    match = _E2_SHAPE.match(machine_type)
    if match is None:
        return None
    vcpus = int(match.group(2))
    return float(vcpus), float(vcpus * E2_GB_PER_VCPU[match.group(1)])


@dataclass(frozen=True)
class BotPrice:
    """One running bot's machine, priced: what the reserve's hot tier and a session's cost both read
    (dispatcher/sessions/cost.py), so the two never disagree."""

    dollars_per_month: float
    size: str  # the machine as priced: "1 vCPU, 2 GB", "e2-standard-2", "shared-cpu-1x, 1024 MB"
    source: str  # where the price comes from: a price page, or the setting that overrides it

    @property
    def dollars_per_second(self) -> float:
        return self.dollars_per_month / (HOURS_PER_MONTH * 3600)


def hot_dollars_per_month(machines: Machines, env: Mapping[str, str]) -> float | None:
    """One running idle bot's cost a month on `machines`; None when it cannot be priced."""
    price = bot_price(machines, env)
    return None if price is None else price.dollars_per_month


def bot_price(machines: Machines, env: Mapping[str, str]) -> BotPrice | None:
    """One running bot's machine on `machines`, priced; None when it cannot be priced."""
    # nan stands for unset: a value set is finite (the reader refuses nan and inf), so never mistaken for it.
    dollars = setting_float(env, "RESERVE_HOT_DOLLARS_PER_MONTH", default=math.nan)
    if not math.isnan(dollars):
        return BotPrice(dollars, "as RESERVE_HOT_DOLLARS_PER_MONTH prices it", "RESERVE_HOT_DOLLARS_PER_MONTH")
    if isinstance(machines, FrozenMachines):  # the price its frozen tier is weighed against
        return BotPrice(machines.frozen_form.running_dollars_per_month, _fly_size(machines),
                        "FLY_RUNNING_DOLLARS_PER_MONTH (https://fly.io/docs/about/pricing/)")
    if machines.name == "ecs":
        region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip()
        if region not in FARGATE:
            log.info("no Fargate price for %r here: the reserve's cost is shown at %s's "
                     "(RESERVE_HOT_DOLLARS_PER_MONTH sets it)", region, FARGATE_FALLBACK_REGION)
        price = FARGATE.get(region, FARGATE[FARGATE_FALLBACK_REGION])
        vcpus = setting_float(env, "ECS_TASK_VCPU")
        gb = setting_float(env, "ECS_TASK_MEMORY_GB")
        return BotPrice(price.monthly(vcpus, gb), f"{vcpus:g} vCPU, {gb:g} GB", price.source)
    if machines.name == "gce":
        machine_type = setting_text(env, "GCE_MACHINE_TYPE")
        shape = e2_shape(machine_type)
        if shape is None:
            log.warning("no price for machine type %r: the reserve's hot cost is not shown "
                        "(RESERVE_HOT_DOLLARS_PER_MONTH sets it)", machine_type)
            return None
        return BotPrice(E2.monthly(*shape), machine_type, E2.source)
    if machines.name == "fly":  # no frozen tier (FLY_FROZEN_FORM=off): the same running price

        return BotPrice(setting_float(env, "FLY_RUNNING_DOLLARS_PER_MONTH"),
                        _fly_size(machines), "FLY_RUNNING_DOLLARS_PER_MONTH (https://fly.io/docs/about/pricing/)")
    if machines.name == "modal":
        from dispatcher.machines.modal.settings import ModalSettings

        settings = getattr(machines, "settings", None)
        if not isinstance(settings, ModalSettings):
            return None
        modal_dollars = modal_monthly(settings.cpu, settings.memory_mb / 1024, settings.gpu)
        if modal_dollars is None:
            log.warning("no Modal price for GPU %r: the reserve's hot cost is not shown "
                        "(RESERVE_HOT_DOLLARS_PER_MONTH sets it)", settings.gpu)
            return None
        gpu = f", {settings.gpu}" if settings.gpu else ""
        cores = f"{settings.cpu:g} core{'' if settings.cpu == 1 else 's'}"
        return BotPrice(modal_dollars, f"{cores}, {settings.memory_mb} MB{gpu}", MODAL_SOURCE)
    if machines.name == "aci":
        from dispatcher.machines.aci.settings import AciSettings

        aci = getattr(machines, "settings", None)
        if not isinstance(aci, AciSettings):
            return None
        return BotPrice(ACI.monthly(aci.cpu, aci.memory_gb), f"{aci.cpu:g} vCPU, {aci.memory_gb:g} GB", ACI.source)
    if machines.name == "cloudrun":  # the stack's bot job's task (stacks/gcp/bot_job.py): 1 vCPU, 2 GiB
        return BotPrice(CLOUD_RUN_JOBS.monthly(1.0, 2.0), "1 vCPU, 2 GiB", CLOUD_RUN_JOBS.source)
    if machines.name == "k8s":
        return _k8s_price(machines, env)
    if machines.name == "local":
        return BotPrice(0.0, "a local process", "local processes cost nothing here")
    return None


def _fly_size(machines: Machines) -> str:
    from dispatcher.machines.fly.provider import FlySettings

    fly = getattr(machines, "settings", None)
    if not isinstance(fly, FlySettings):
        return "shared-cpu-4x, 1024 MB"
    return f"{fly.cpu_kind}-cpu-{fly.cpus}x, {fly.memory_mb} MB"


def _k8s_price(machines: Machines, env: Mapping[str, str]) -> BotPrice | None:
    from dispatcher.machines.k8s.settings import K8sSettings, quantity

    k8s = getattr(machines, "settings", None)
    if not isinstance(k8s, K8sSettings):
        return None
    vcpu_hour = setting_float(env, "K8S_NODE_VCPU_HOUR_DOLLARS")
    gb_hour = setting_float(env, "K8S_NODE_GB_HOUR_DOLLARS", default=E2.gb_hour)
    own = (vcpu_hour, gb_hour) != (E2.vcpu_hour, E2.gb_hour)
    source = ("K8S_NODE_VCPU_HOUR_DOLLARS and K8S_NODE_GB_HOUR_DOLLARS (the nodes' prices)" if own else
              f"no Kubernetes list price: a GKE Standard E2 node's, us-central1 ({E2.source})")
    node = ComputePrice(vcpu_hour, gb_hour, source)
    return BotPrice(node.monthly(quantity(k8s.cpu), quantity(k8s.memory) / 2**30),
                    f"{k8s.cpu} CPU, {k8s.memory} requested", source)
