"""Each tier's cost a month is in /metrics on every provider: the hot tier (running idle bots) is
priced from the provider's list prices (dispatcher/reserve/prices.py: Fargate per vCPU and GB and
region, Compute Engine per E2 machine type, Fly's running price, nothing for local processes),
or RESERVE_HOT_DOLLARS_PER_MONTH, and multiplied by the idle bots held."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from botchannel.contract import Hello
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.machines.base import FrozenForm
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve.factory import build_reserve
from dispatcher.reserve.prices import hot_dollars_per_month
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.reserve.test_reserve_shared import Machines

COST = "voicefleet_reserve_tier_cost_dollars_per_month"


class Named(Machines):
    """The paper provider under a real provider's name, with no identity check of its own."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.identity = Unverified("test")


def named(name: str) -> Named:
    return Named(name)


@pytest.mark.parametrize(("kind", "env", "dollars"), [
    ("ecs", {"AWS_REGION": "us-east-1"}, 36.04),  # the aws-prod bot: 1 vCPU, 2 GB
    ("ecs", {"AWS_REGION": "us-east-1", "ECS_TASK_VCPU": "0.5", "ECS_TASK_MEMORY_GB": "1"}, 18.02),  # aws-dev's
    ("ecs", {"AWS_REGION": "ap-south-2"}, 36.04),  # a region not in the table: us-east-1's
    ("gce", {}, 48.91),  # gcp-prod's e2-standard-2
    ("gce", {"GCE_MACHINE_TYPE": "e2-medium"}, 24.46),
    ("gce", {"GCE_MACHINE_TYPE": "e2-small"}, 12.23),
    ("gce", {"GCE_MACHINE_TYPE": "n2-standard-2"}, None),  # no price for the family: nothing shown
    ("fly", {}, 8.41),  # the default shared-cpu-4x, 1 GB
    ("cloudrun", {}, 57.82),  # the bot job's task: 1 vCPU, 2 GiB, billed while it runs (idle too)
    ("local", {}, 0.0),
    ("gce", {"GCE_MACHINE_TYPE": "n2-standard-2", "RESERVE_HOT_DOLLARS_PER_MONTH": "61.5"}, 61.5),
])  # fmt: skip
def test_one_running_idle_bot_is_priced_per_provider(kind: str, env: dict[str, str], dollars: float | None) -> None:
    assert hot_dollars_per_month(named(kind), env) == dollars


@pytest.mark.parametrize(("machine_type", "vcpu_gb"), [
    ("e2-highmem-2", (2, 16)),  # 8 GB per vCPU
    ("e2-highcpu-4", (4, 4)),  # 1 GB per vCPU
])  # fmt: skip
def test_an_e2_machine_types_memory_follows_its_family(machine_type: str, vcpu_gb: tuple[int, int]) -> None:
    # us-central1's E2 list prices per vCPU-hour and GB-hour (cloud.google.com/compute/vm-instance-pricing)
    vcpus, gb = vcpu_gb
    expected = round((vcpus * 0.021811 + gb * 0.002923) * 730, 2)
    assert hot_dollars_per_month(named("gce"), {"GCE_MACHINE_TYPE": machine_type}) == expected


def test_a_region_without_a_fargate_price_is_said_so_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dispatcher.reserve.reserve"):
        hot_dollars_per_month(named("ecs"), {"AWS_REGION": "us-east-1"})
        assert not caplog.records  # a priced region: nothing to say
        hot_dollars_per_month(named("ecs"), {"AWS_REGION": "ap-south-2"})
    (said,) = [r.getMessage() for r in caplog.records]
    assert "ap-south-2" in said and "us-east-1" in said  # which region, and whose price is shown


class WithFrozenTier(Named):
    """A provider that offers a frozen tier, at a running price of its own."""

    frozen_form = FrozenForm("suspended", resume_seconds=1.0, running_dollars_per_month=7.25,
                             frozen_dollars_per_month=0.5)

    async def freeze(self, bot_id: str) -> None: ...
    async def thaw(self, bot_id: str) -> None: ...


def test_a_provider_with_a_frozen_tier_prices_its_hot_tier_as_that_tier_does() -> None:
    # the same running price the frozen tier is weighed against, not the provider's table
    assert hot_dollars_per_month(WithFrozenTier("gce"), {}) == 7.25


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "lots"])
def test_a_price_that_is_no_price_stops_start_up_named(raw: str) -> None:
    with pytest.raises(SettingsError, match="RESERVE_HOT_DOLLARS_PER_MONTH"):
        hot_dollars_per_month(named("ecs"), {"RESERVE_HOT_DOLLARS_PER_MONTH": raw})


def cost(registry: CollectorRegistry, provider: str, tier: str) -> float | None:
    return registry.get_sample_value(COST, {"provider": provider, "tier": tier})


@pytest.mark.parametrize(("kind", "env", "each"), [
    ("ecs", {"AWS_REGION": "us-east-1"}, 36.04),
    ("gce", {"GCE_MACHINE_TYPE": "e2-medium"}, 24.46),
    ("local", {}, 0.0),
])  # fmt: skip
async def test_the_hot_tiers_cost_is_in_metrics_on_a_provider_without_a_frozen_tier(
    kind: str, env: dict[str, str], each: float
) -> None:
    metrics, coordination = Metrics(kind), LocalCoordination()
    channels = BotChannels(BotCredentials("t" * 40), claims=coordination.claims, identity=Unverified("test"))
    reserve = build_reserve({**env, "RESERVE_MIN_IDLE": "0"}, kind, named(kind), channels, metrics, coordination)
    assert reserve is not None
    await reserve.refill()
    assert cost(metrics.registry, kind, "hot") == 0.0  # shown from the start (was never emitted but on Fly)
    for n in range(3):  # three idle bots on this replica's channel
        await channels._register(BotLink(Hello(f"rsv-{n}", image="img"), socket=None, session_id=None))  # type: ignore[arg-type]
    await reserve.refill()
    assert cost(metrics.registry, kind, "hot") == pytest.approx(3 * each)
    assert cost(metrics.registry, kind, "frozen") is None  # no frozen tier here
    await reserve.aclose()


def test_a_modal_sandbox_is_priced_per_core_gib_and_gpu_from_its_settings() -> None:
    from dispatcher.machines.modal.reserve import ModalWarmMachines
    from dispatcher.machines.modal.settings import ModalSettings

    def priced(**env: str) -> float | None:
        settings = ModalSettings.from_env({"MODAL_TOKEN_ID": "a", "MODAL_TOKEN_SECRET": "b", "MODAL_APP": "x",
                                           "MODAL_BOT_IMAGE": "im-1", **env})
        machines = ModalWarmMachines(settings, coordination=LocalCoordination(), channel_url="ws://x/bots",
                                     max_idle_seconds=60, max_session_seconds=600)
        return hot_dollars_per_month(machines, {})

    # 1 core × $0.0000393/s + 2 GiB × $0.00000222/s, for 730 h
    assert priced() == pytest.approx((0.0000393 + 2 * 0.00000222) * 3600 * 730, abs=0.01)
    two_l4 = priced(BOT_GPU="nvidia-l4", BOT_GPU_COUNT="2")
    assert two_l4 == pytest.approx(priced() + 2 * 0.000222 * 3600 * 730, abs=0.02)
    assert priced(MODAL_CPU="0.5", MODAL_MEMORY_MB="1024") < priced()
