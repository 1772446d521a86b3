"""Azure Managed Redis across `up`s: each run here is the program's next `up` after the one before it, its
last outputs read back. Without high availability (a stack that is not prod) Azure loses every key when it
scales the store, while a preview shows the cluster changed in place: the program warns of a size change."""

from __future__ import annotations

from collections.abc import Mapping

from stacks.azure.store import scale_warning
from stacks.tools import mocks
from stacks.tools.plan import _diagnostics
from tests.infra.tools.test_plan_ceiling import _config

CLUSTER = "azure-native:redisenterprise:RedisEnterprise"
LOST = "Azure loses all the store's data"


def _up(overrides: Mapping[str, str], last: mocks.Deployed | None = None) -> tuple[mocks.Run, list[str]]:
    """azure-prod (several replicas: a store) with `overrides`, as the `up` after `last`, and its warnings."""
    config, secret_keys = _config("azure-prod", overrides)
    with _diagnostics() as said:
        run = mocks.run_program(config, secret_keys, stack="azure-prod", deployed=last)
    return run, [line for line in said if LOST in line]


def _after(run: mocks.Run) -> mocks.Deployed:
    deployed = mocks.Deployed()
    deployed.record(run)
    return deployed


def test_a_size_change_on_a_store_without_high_availability_warns_that_azure_loses_its_data() -> None:
    dev = {"environment": "dev"}  # no high availability: Balanced_B0 unset
    first, warned = _up(dev)
    assert warned == []  # a first `up` changes no size
    assert mocks.unwrap(first.one(CLUSTER).inputs)["highAvailability"] == "Disabled"
    _, (warning,) = _up({**dev, "storeSku": "Balanced_B1"}, _after(first))
    assert warning.startswith("storeSku Balanced_B0 -> Balanced_B1 scales this stack's Azure Managed Redis")
    assert "learn.microsoft.com/azure/redis/how-to-scale" in warning
    assert "`pulumi config set storeSku Balanced_B0`" in warning
    assert _up(dev, _after(first))[1] == []  # the same size again: nothing to say


def test_a_size_change_with_high_availability_keeps_the_data_and_says_nothing() -> None:
    first, _ = _up({})  # azure-prod: environment prod, high availability on
    assert mocks.unwrap(first.one(CLUSTER).inputs)["highAvailability"] == "Enabled"
    assert _up({"storeSku": "Balanced_B3"}, _after(first))[1] == []


def test_an_up_of_an_earlier_release_left_no_size_to_compare_with() -> None:
    assert scale_warning(None, "Balanced_B1") == ""
    assert scale_warning("Balanced_B500", "Balanced_B1") == ""
    assert scale_warning("Balanced_B0", "Balanced_B0") == ""
    assert LOST in scale_warning("Balanced_B1", "Balanced_B3")
