"""The shipped stacks' store ceiling (stacks/config/store_ceiling_notes.py), as the plan and `voicefleet config
check --stack` say it beside the concurrency ceiling: a note for every stack that makes its store, a warning,
never a refusal, where a day at maxConcurrentSessions starts more sessions than it holds, and the keys that size
each cloud's store reaching the store the stack makes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from stacks.config.reader import SettingsError
from stacks.tools import mocks
from stacks.tools.config_check import main as config_check
from stacks.tools.mocks import unwrap
from stacks.tools.plan import _diagnostics
from tests.infra.settings_read import read_settings
from tests.infra.tools.test_plan_ceiling import _config

NOTE = "store ceiling ("
WARNING = "a day at maxConcurrentSessions="


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _said(stack: str, overrides: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The store's note and warnings the program's first step says for `stack` with `overrides`."""
    config, secret_keys = _config(stack, overrides)
    with _diagnostics() as said:
        read_settings(config, secret_keys, stack=stack)
    lines = list(dict.fromkeys(said))
    return [n for n in lines if n.startswith(NOTE)], [n for n in lines if n.startswith(WARNING)]


def _checked(stack: str, capsys: pytest.CaptureFixture[str], *overrides: str) -> list[str]:
    config_check(["check", "--stack", stack, *(arg for key in overrides for arg in ("--config", key))])
    return [line.removeprefix(f"{stack}: ") for line in capsys.readouterr().out.splitlines()
            if line.startswith((f"{stack}: note: {NOTE}", f"{stack}: warning: {WARNING}"))]


def test_aws_prods_peak_day_passes_its_1_gb_store_and_the_plan_and_the_check_say_so_alike(
        capsys: pytest.CaptureFixture[str]) -> None:
    (note,), (warning,) = _said("aws-prod")
    assert note.startswith(f"{NOTE}ElastiCache Serverless for Valkey, 1 GB of data storage")
    assert "363,636 sessions started a day" in note
    assert warning.startswith(f"{WARNING}2,500 of 4-minute calls starts up to 900,000 sessions")
    assert "`pulumi config set storeDataGb N`" in warning
    assert _checked("aws-prod", capsys) == [f"note: {note}", f"warning: {warning}"]


def test_a_larger_store_data_cap_holds_the_day_and_reaches_the_cache(capsys: pytest.CaptureFixture[str]) -> None:
    (note,), warnings = _said("aws-prod", {"storeDataGb": "3"})
    assert warnings == [] and "1,090,909 sessions started a day" in note
    assert _checked("aws-prod", capsys, "storeDataGb=3") == [f"note: {note}"]
    config, secret_keys = _config("aws-prod", {"storeDataGb": "3"})
    run = mocks.run_program(config, secret_keys, stack="aws-prod")
    (cache,) = run.of_type("aws:elasticache/serverlessCache:ServerlessCache")
    assert unwrap(cache.inputs)["cacheUsageLimits"]["dataStorage"] == {"maximum": 3, "unit": "GB"}


def test_a_store_data_cap_past_elasticaches_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match=r"voicefleet:storeDataGb must be at most 5000"):
        _said("aws-prod", {"storeDataGb": "5001"})


def test_gcp_prods_node_holds_its_day_and_a_node_type_set_reaches_memorystore() -> None:
    (note,), warnings = _said("gcp-prod")
    assert warnings == [] and note.startswith(f"{NOTE}Memorystore for Valkey, one STANDARD_SMALL node, 5.2 GB")
    (note,), (warning,) = _said("gcp-prod", {"storeNodeType": "SHARED_CORE_NANO"})
    assert "`pulumi config set storeNodeType TYPE`, at most HIGHMEM_XLARGE (46.4 GB)" in warning
    config, secret_keys = _config("gcp-prod", {"storeNodeType": "HIGHMEM_MEDIUM"})
    run = mocks.run_program(config, secret_keys, stack="gcp-prod")
    (instance,) = run.of_type("gcp:memorystore/instance:Instance")
    assert unwrap(instance.inputs)["nodeType"] == "HIGHMEM_MEDIUM"


def test_an_azure_sku_set_reaches_managed_redis_and_its_store_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    (note,), warnings = _said("azure-prod")
    assert warnings == [] and note.startswith(f"{NOTE}Azure Managed Redis, Balanced_B1, 1 GB of memory")
    (note,), _ = _said("azure-prod", {"storeSku": "Balanced_B5"})
    assert "Balanced_B5, 6 GB of memory" in note
    assert _checked("azure-prod", capsys, "storeSku=Balanced_B5") == [f"note: {note}"]
    config, secret_keys = _config("azure-prod", {"storeSku": "Balanced_B5"})
    run = mocks.run_program(config, secret_keys, stack="azure-prod")
    (cluster,) = run.of_type("azure-native:redisenterprise:RedisEnterprise")
    assert unwrap(cluster.inputs)["sku"]["name"] == "Balanced_B5"


def test_the_in_cluster_store_is_counted_and_an_external_one_is_not(capsys: pytest.CaptureFixture[str]) -> None:
    (note,), warnings = _said("k8s-sandbox-dev")
    assert warnings == [] and note.startswith(f"{NOTE}the in-cluster Valkey, maxmemory 256 MiB")
    assert _checked("k8s-sandbox-dev", capsys) == [f"note: {note}"]
    assert _said("k8s-dev") == ([], [])  # k8sStore external: its size is not the stack's
    assert _checked("k8s-dev", capsys) == []


def test_one_replica_has_no_store_and_no_store_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    assert _said("aws-dev") == ([], [])  # one dispatcher, no cells
    assert _checked("aws-dev", capsys) == []
    (note,), _ = _said("aws-dev", {"dispatcherCount": "2"})
    assert _checked("aws-dev", capsys, "dispatcherCount=2") == [f"note: {note}"]


def test_a_node_type_in_gclouds_spelling_is_refused_naming_the_one_to_set() -> None:
    with pytest.raises(SettingsError) as refused:
        _said("gcp-prod", {"storeNodeType": "standard-small"})
    message = str(refused.value)
    assert "voicefleet:storeNodeType must be one of SHARED_CORE_NANO, " in message and "one of ," not in message
    assert "`pulumi config set storeNodeType STANDARD_SMALL`" in message


def test_an_azure_size_a_nocluster_database_cannot_take_is_refused_before_azure_refuses_the_up() -> None:
    """Azure's Non-clustered policy "applies only to caches sized 25 GB and smaller": a Balanced_B50 store would
    pass the plan and fail at ARM."""
    with pytest.raises(SettingsError) as refused:
        _said("azure-prod", {"storeSku": "Balanced_B50"})
    message = str(refused.value)
    assert "voicefleet:storeSku must be one of Balanced_B0, " in message and "Balanced_B20, or unset" in message
    assert "only for a clustered database, and the stack's is NoCluster" in message
