"""The store's ceiling's arithmetic (stacks/config/store_ceiling.py): the sessions started a day a store
holds, at the bench's bytes a session and a fifth kept back, against a day at the stated peak."""

from __future__ import annotations

import pytest

from dispatcher.store import session_index, timelines
from stacks.config import store_ceiling
from stacks.config.store_ceiling import KEEP_SECONDS, StoreDay
from stacks.k8s import store as k8s_store


def test_a_gb_holds_its_four_fifths_over_the_bytes_a_session_for_a_day() -> None:
    day = StoreDay(store_ceiling.elasticache(1), KEEP_SECONDS, sessions=5, call_minutes=4)
    assert day.held == 363_636  # 0.8 × 10⁹ ÷ 2,200
    assert day.peak_day == 1_800  # 5 × 1440 ÷ 4


def test_a_shorter_history_holds_more_starts_a_day_in_the_same_store() -> None:
    cap = store_ceiling.elasticache(1)
    assert StoreDay(cap, KEEP_SECONDS / 4, 5, 4).held == 4 * 363_636
    assert StoreDay(cap, KEEP_SECONDS / 4, 2500, 4).needed_bytes() == 618_750_000  # 225,000 × 2,200 ÷ 0.8


def test_a_longer_call_starts_fewer_sessions_a_day() -> None:
    assert StoreDay(store_ceiling.elasticache(1), KEEP_SECONDS, 2500, 4).peak_day == 900_000
    assert StoreDay(store_ceiling.elasticache(1), KEEP_SECONDS, 2500, 7).peak_day == 514_286  # rounded up


def test_a_day_that_fits_is_a_note_alone() -> None:
    note, warnings = store_ceiling.said(StoreDay(store_ceiling.memorystore("STANDARD_SMALL"), KEEP_SECONDS, 2500, 4))
    assert warnings == []
    assert note.startswith("store ceiling (Memorystore for Valkey, one STANDARD_SMALL node, 5.2 GB of writable "
                           "keyspace, cloud.google.com/memorystore/docs/valkey/instance-node-specification): "
                           "1,890,909 sessions started a day")
    assert "starts at most 900,000" in note


def test_a_day_past_the_store_warns_naming_the_key_its_largest_value_and_what_it_needs() -> None:
    _, (warning,) = store_ceiling.said(StoreDay(store_ceiling.elasticache(1), KEEP_SECONDS, 2500, 4),
                                       history_key="SESSION_HISTORY")
    assert warning.startswith("a day at maxConcurrentSessions=2,500 of 4-minute calls starts up to 900,000 sessions, "
                              "above the 363,636 the store (ElastiCache Serverless for Valkey, 1 GB of data storage) "
                              "holds")
    assert "It needs about 2.48 GB of data" in warning  # 900,000 × 2,200 ÷ 0.8
    assert "`pulumi config set storeDataGb N`, N in GB, at most 5,000" in warning
    assert "or shorten SESSION_HISTORY" in warning and "an upper bound" in warning


@pytest.mark.parametrize(("cap", "gb", "largest"), [
    (store_ceiling.memorystore("SHARED_CORE_NANO"), 1.12, "at most HIGHMEM_XLARGE (46.4 GB)"),
    (store_ceiling.managed_redis("Balanced_B0"), 0.4, "at most Balanced_B20 (24 GB: larger sizes take only a "
                                                      "clustered database"),
    (store_ceiling.in_cluster(256), 256 * 2**20 / 1e9, "k8sStore external"),
])
def test_each_clouds_store_counts_its_documented_size_and_names_how_to_raise_it(
        cap: store_ceiling.StoreCap, gb: float, largest: str) -> None:
    assert cap.data_bytes == round(gb * 1e9)
    _, (warning,) = store_ceiling.said(StoreDay(cap, KEEP_SECONDS, 10_000, 4))
    assert largest in warning


def test_aws_warns_that_a_full_store_evicts_the_records_that_stop_double_launches_the_others_that_it_refuses(
) -> None:
    """ElastiCache Serverless takes no eviction policy: at its data maximum it evicts keys with a TTL first
    (AWS's Scaling page), so "refuses writes (noeviction)" was false there; the other stores are noeviction."""
    def warned(cap: store_ceiling.StoreCap) -> str:
        _, (warning,) = store_ceiling.said(StoreDay(cap, KEEP_SECONDS, 100_000, 4))
        return warning

    aws = warned(store_ceiling.elasticache(1))
    assert "noeviction" not in aws and "refuses writes (" not in aws
    assert "evicts the keys that have a TTL" in aws and "once-marks" in aws and "<stack>-store-full" in aws
    assert "refuses writes (maxmemory-policy noeviction), so every start fails" in warned(
        store_ceiling.memorystore("HIGHMEM_XLARGE"))
    assert "refuses writes (NoEviction)" in warned(store_ceiling.managed_redis("Balanced_B20"))
    assert "refuses writes (noeviction)" in warned(store_ceiling.in_cluster(256))


def test_azure_counts_what_it_does_not_reserve_and_offers_only_what_a_nocluster_database_takes() -> None:
    """Azure Managed Redis keeps about 20 % of a size's memory back, and a NoCluster database is 25 GB at most."""
    assert store_ceiling.managed_redis("Balanced_B1").data_bytes == 800_000_000
    assert store_ceiling.managed_redis("Balanced_B20").data_bytes == 19_200_000_000
    assert max(store_ceiling.SKU_GB.values()) == 24 and "Balanced_B50" not in store_ceiling.SKU_CHOICES


def test_a_value_out_of_the_choices_is_told_the_sizes_without_the_empty_one_and_the_spelling_it_meant() -> None:
    refused = store_ceiling.refused_node_type("standard-small")
    assert refused.startswith("must be one of SHARED_CORE_NANO, STANDARD_SMALL,") and ", ," not in refused
    assert "gcloud's spelling of STANDARD_SMALL, `pulumi config set storeNodeType STANDARD_SMALL`" in refused
    assert "spelling" not in store_ceiling.refused_node_type("huge")
    assert "only for a clustered database" in store_ceiling.refused_sku("Balanced_B50")
    assert "clustered" not in store_ceiling.refused_sku("Balanced_B2")


def test_the_ceiling_counts_the_history_the_dispatcher_keeps_and_the_in_cluster_stores_maxmemory() -> None:
    assert KEEP_SECONDS == timelines.KEEP_SECONDS == session_index.KEEP_SECONDS
    assert f"maxmemory {store_ceiling.K8S_MAXMEMORY_MIB}mb" in k8s_store.valkey_config(["p"])
