"""What the plan, a preview and `voicefleet config check --stack` say of a stack's store ceiling
(stacks/config/store_ceiling.py), beside the concurrency ceiling (stacks/config/ceiling_notes.py): a note
with the sessions started a day its coordination store holds, and a warning where a day at
`maxConcurrentSessions` starts more. A warning, never a refusal: the peak day is an upper bound.

Also the keys that size each cloud's store, read here so that the stack builds the store the note
counts: `storeDataGb` (AWS), `storeNodeType` (GCP), `storeSku` (Azure); unset, the size each stack had
before them. A stack without a store (one replica) or with an external one (`k8sStore: external`) has
no note: its size is not the stack's.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from stacks.config import k8s as k8s_settings
from stacks.config import store_ceiling
from stacks.config.model import Settings
from stacks.config.reader import Reader
from stacks.config.store_ceiling import KEEP_SECONDS, NODE_TYPE_GB, SKU_GB, StoreCap, StoreDay

# What each stack made before its key: a dev store and a prod one.
NODE_TYPES_BY_ENVIRONMENT = {"prod": "STANDARD_SMALL", "": "SHARED_CORE_NANO"}
SKUS_BY_ENVIRONMENT = {"prod": "Balanced_B1", "": "Balanced_B0"}


def data_gb(cfg: Reader) -> int:
    return cfg.integer(store_ceiling.DATA_GB_KEY, minimum=store_ceiling.MIN_DATA_GB,
                       maximum=store_ceiling.MAX_DATA_GB)


def node_type(cfg: Reader, environment: str) -> str:
    """Memorystore's node type: `storeNodeType`, or the environment's."""
    chosen = cfg.string(store_ceiling.NODE_TYPE_KEY)
    if chosen and chosen not in NODE_TYPE_GB:
        raise cfg.fail(store_ceiling.NODE_TYPE_KEY, store_ceiling.refused_node_type(chosen))
    return chosen or _by_environment(NODE_TYPES_BY_ENVIRONMENT, environment)


def sku(cfg: Reader, environment: str) -> str:
    """Azure Managed Redis' size: `storeSku`, or the environment's."""
    chosen = cfg.string(store_ceiling.SKU_KEY)
    if chosen and chosen not in SKU_GB:
        raise cfg.fail(store_ceiling.SKU_KEY, store_ceiling.refused_sku(chosen))
    return chosen or _by_environment(SKUS_BY_ENVIRONMENT, environment)


def _by_environment(table: dict[str, str], environment: str) -> str:
    return table.get(environment, table[""])


def of_settings(settings: Settings) -> StoreCap | None:
    """The store the stack makes, from its validated settings; None without one."""
    if (aws := settings.aws) is not None:
        return store_ceiling.elasticache(aws.store_data_gb) if aws.store else None
    if (gcp := settings.gcp) is not None:
        return store_ceiling.memorystore(gcp.store_node_type) if gcp.store else None
    if (azure := settings.azure) is not None:
        return store_ceiling.managed_redis(azure.store_sku) if azure.store else None
    if (k8s := settings.kubernetes) is not None and k8s.store == k8s_settings.IN_CLUSTER:
        return store_ceiling.in_cluster(store_ceiling.K8S_MAXMEMORY_MIB)
    return None


def log(settings: Settings, minutes: int) -> None:
    """The plan and a preview: the note, and the warning where the peak day does not fit (`minutes`:
    expectedCallMinutes, as the concurrency ceiling read it)."""
    cap = of_settings(settings)
    if cap is None:
        return
    note, warnings = store_ceiling.said(StoreDay(cap, KEEP_SECONDS, settings.max_concurrent_sessions, minutes))
    pulumi.log.info(note)
    for warning in warnings:
        pulumi.log.warn(warning)


def stack_notes(value: Callable[[str], str], number: Callable[[str], int | None], sessions: int,
                minutes: int, *, channel: bool) -> list[str]:
    """`voicefleet config check --stack`: the same from the stack file's keys as text (`value`, `number`:
    stacks/config/ceiling_notes.py's, derived values and defaults standing in for unset ones). A value the
    program would refuse says nothing here: the check names it."""
    cap = _of_config(value, number, channel)
    if cap is None:
        return []
    note, warnings = store_ceiling.said(StoreDay(cap, KEEP_SECONDS, sessions, minutes))
    return [f"note: {note}", *(f"warning: {warning}" for warning in warnings)]


def _of_config(value: Callable[[str], str], number: Callable[[str], int | None], channel: bool) -> StoreCap | None:
    cloud, environment = value("cloud"), value("environment")
    if cloud == "aws":
        gb = number(store_ceiling.DATA_GB_KEY)
        store = (number("dispatcherCount") or 1) > 1 or _listed(value("ecsCells"))
        valid = gb is not None and gb <= store_ceiling.MAX_DATA_GB
        return store_ceiling.elasticache(gb) if store and gb is not None and valid else None
    if cloud == "gcp":
        chosen = value(store_ceiling.NODE_TYPE_KEY) or _by_environment(NODE_TYPES_BY_ENVIRONMENT, environment)
        store = ((channel and (number("dispatcherMaxInstances") or 1) > 1) or _listed(value("cloudRunCells"))
                 or _listed(value("gceCells")))
        return store_ceiling.memorystore(chosen) if store and chosen in NODE_TYPE_GB else None
    if cloud == "azure":
        chosen = value(store_ceiling.SKU_KEY) or _by_environment(SKUS_BY_ENVIRONMENT, environment)
        store = (number("dispatcherMaxReplicas") or 1) > 1 or _listed(value("aciCells"))
        return store_ceiling.managed_redis(chosen) if store and chosen in SKU_GB else None
    if cloud == "k8s" and value(k8s_settings.STORE_KEY) == k8s_settings.IN_CLUSTER:
        return store_ceiling.in_cluster(store_ceiling.K8S_MAXMEMORY_MIB)
    return None


def _listed(cells: str) -> bool:
    """Cells listed in a key's text (its default stands as "[]"): a store records each session's cell."""
    return cells.strip() not in ("", "[]")
