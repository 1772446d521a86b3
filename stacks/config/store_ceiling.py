"""The store's ceiling: how many sessions started a day the stack's coordination store holds, beside a
day at the stated peak.

Every session started leaves its index entry, its timeline and its budget-ledger open in the store,
kept `keep` seconds (a day by default) whether it ended or not, so the sessions started over that
window, not the live ones, fill it. Full, a `noeviction` store (GCP, Azure, in-cluster) refuses writes
and every start fails; ElastiCache Serverless (AWS) takes no policy and first evicts the keys with a
TTL, every record the dispatcher keeps (StoreCap.full says each). Measured by bench/dispatcher_tier
(2026-11-30, docs/performance.md, "The dispatcher tier at a 100,000-call peak"): 1.8-2.2 KB a session once it is
past its first minutes (2,160 bytes from 3,000 to 10,000 sessions, 1,760 from 10,000 to 25,000); the
top, 2,200 bytes, is counted. A fifth of the store's data cap is left for everything else: the young
sessions' extra (up to 4.5 KB each for their first minutes), the budgets' periods, campaigns, leases.

A day at the peak is `maxConcurrentSessions` calls at once all day long, each
`expectedCallMinutes`: maxConcurrentSessions × 1440 ÷ expectedCallMinutes starts, an upper bound
(real days have nights). Where it does not fit, a warning names the key that raises the store and
its largest value, and the history setting that shortens how long an ended session is kept.
Pure arithmetic: stacks/config/store_ceiling_notes.py reads the stack and says it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# The keys that size each cloud's store, and what each size holds. AWS: ElastiCache Serverless's
# `data_storage` maximum, 1-5,000 GB (docs.aws.amazon.com/AmazonElastiCache/latest/dg/
# ServerlessCache.html and its CloudFormation page, CacheUsageLimits). GCP: Memorystore for Valkey's
# default writable keyspace of a node, the node's total less what Memorystore keeps back against OOM
# (cloud.google.com/memorystore/docs/valkey/instance-node-specification). Azure: Azure Managed Redis'
# memory of each Balanced size (learn.microsoft.com/azure/redis/overview) less the ~20 % Azure reserves
# for replication and failover ("Reserved memory", AZURE_RESERVE_PAGE); only the sizes a NoCluster
# database takes, "caches sized 25 GB and smaller" (the same page, "Cluster policies"): B20 at most.
# Kubernetes: the in-cluster Valkey's `maxmemory`, half its container's memory.
DATA_GB_KEY = "storeDataGb"
MIN_DATA_GB, MAX_DATA_GB = 1, 5_000
NODE_TYPE_KEY = "storeNodeType"
NODE_TYPE_GB = {"SHARED_CORE_NANO": 1.12, "STANDARD_SMALL": 5.2, "HIGHMEM_MEDIUM": 10.4, "HIGHMEM_XLARGE": 46.4}
NODE_TYPE_CHOICES = ("", *NODE_TYPE_GB)  # "": the environment's (store_ceiling_notes.py)
SKU_KEY = "storeSku"
SKU_GB = {"Balanced_B0": 0.5, "Balanced_B1": 1, "Balanced_B3": 3, "Balanced_B5": 6, "Balanced_B10": 12,
          "Balanced_B20": 24}
SKU_CHOICES = ("", *SKU_GB)
AZURE_RESERVED = 0.2  # of a size's memory, kept back by Azure Managed Redis: not the data's
# The in-cluster Valkey's container memory (stacks/k8s/store.py) and its `maxmemory`, half of it: an
# append-only file's rewrite forks, and the fork's copy-on-write pages count against the same limit.
K8S_STORE_MEMORY_MIB = 512
K8S_MAXMEMORY_MIB = K8S_STORE_MEMORY_MIB // 2
ELASTICACHE_PAGE = "docs.aws.amazon.com/AmazonElastiCache/latest/dg/ServerlessCache.html"
MEMORYSTORE_PAGE = "cloud.google.com/memorystore/docs/valkey/instance-node-specification"
AZURE_PAGE = "learn.microsoft.com/azure/redis/overview"
AZURE_RESERVE_PAGE = "learn.microsoft.com/azure/redis/architecture"

BYTES_A_SESSION = 2_200  # bench/dispatcher_tier, 2026-11-30: 1.8-2.2 KB kept a session, the top
OTHER_SHARE = 0.2  # of the data cap, for what is not a session's history
DAY_SECONDS = 86_400
KEEP_SECONDS = DAY_SECONDS  # how long the dispatcher keeps a session's history (dispatcher/store/timelines.py)
GB = 1_000_000_000
MB = 1_000_000


@dataclass(frozen=True)
class StoreCap:
    """A store's data cap and how to raise it."""

    store: str  # what the store is ("ElastiCache Serverless for Valkey")
    size: str  # its size as the stack states it ("1 GB data storage", "node type STANDARD_SMALL")
    data_bytes: int  # what it may hold
    origin: str  # where the figure is documented
    raise_it: str  # the stack key that raises it, with its largest value
    full: str  # what the store does when full, and what that does to the starts


@dataclass(frozen=True)
class StoreDay:
    """A stack's store against its day at the peak."""

    cap: StoreCap
    keep_seconds: float  # how long a session's history is kept
    sessions: int  # maxConcurrentSessions
    call_minutes: int  # expectedCallMinutes

    @property
    def held(self) -> int:
        """Sessions started a day the store holds: the window's worth, scaled to a day."""
        window = math.floor(self.cap.data_bytes * (1 - OTHER_SHARE) / BYTES_A_SESSION)
        return math.floor(window * DAY_SECONDS / self.keep_seconds)

    @property
    def peak_day(self) -> int:
        """Sessions a day at the stated peak all day: an upper bound."""
        return math.ceil(self.sessions * 1440 / self.call_minutes)

    def needed_bytes(self) -> int:
        """The data cap the peak day needs at this history."""
        window = self.peak_day * self.keep_seconds / DAY_SECONDS
        return math.ceil(window * BYTES_A_SESSION / (1 - OTHER_SHARE))


# What each store does when full. ElastiCache Serverless takes no maxmemory-policy: at its data maximum it
# "will begin evicting data in your cache that has a Time-To-Live (TTL) set, using the LRU logic", and
# refuses writes only when none is left (docs.aws.amazon.com/AmazonElastiCache/latest/red-ug/Scaling.html).
# The others are made `noeviction`: stacks/gcp/store.py, stacks/azure/store.py, stacks/k8s/store.py.
EVICTS = ("at its data maximum ElastiCache Serverless evicts the keys that have a TTL, and every record the "
          "dispatcher keeps has one (leases, cell records, once-marks, timelines: the records that stop a call "
          "launching twice), before it refuses writes and every start fails; the stack alarms at 75% "
          "(<stack>-store-full)")
REFUSES = "a full store refuses writes ({policy}), so every start fails"


def elasticache(data_gb: int) -> StoreCap:
    return StoreCap("ElastiCache Serverless for Valkey", f"{data_gb:,} GB of data storage", data_gb * GB,
                    f"its data_storage maximum, {ELASTICACHE_PAGE}",
                    f"`pulumi config set {DATA_GB_KEY} N`, N in GB, at most {MAX_DATA_GB:,}", EVICTS)


def memorystore(node_type: str) -> StoreCap:
    gb = NODE_TYPE_GB[node_type]
    largest = max(NODE_TYPE_GB, key=NODE_TYPE_GB.__getitem__)
    return StoreCap("Memorystore for Valkey", f"one {node_type} node", round(gb * GB),
                    f"{gb:g} GB of writable keyspace, {MEMORYSTORE_PAGE}",
                    f"`pulumi config set {NODE_TYPE_KEY} TYPE`, at most {largest} ({NODE_TYPE_GB[largest]:g} GB)",
                    REFUSES.format(policy="maxmemory-policy noeviction"))


def managed_redis(sku: str) -> StoreCap:
    gb = SKU_GB[sku]
    largest = max(SKU_GB, key=SKU_GB.__getitem__)
    return StoreCap("Azure Managed Redis", sku, round(gb * (1 - AZURE_RESERVED) * GB),
                    f"{gb:g} GB of memory less the {AZURE_RESERVED:.0%} Azure reserves, {AZURE_PAGE}, "
                    f"{AZURE_RESERVE_PAGE}",
                    f"`pulumi config set {SKU_KEY} SKU`, at most {largest} ({SKU_GB[largest]:g} GB: larger sizes "
                    "take only a clustered database, docs/operations.md)",
                    REFUSES.format(policy="NoEviction"))


def in_cluster(maxmemory_mib: int) -> StoreCap:
    return StoreCap("the in-cluster Valkey", f"maxmemory {maxmemory_mib:,} MiB", maxmemory_mib * 2**20,
                    f"half its container's {K8S_STORE_MEMORY_MIB} MiB, room for an append-only rewrite's fork",
                    "`pulumi config set k8sStore external` with a store of your own sized for it at k8sStoreUrl "
                    "(the in-cluster one is not sized by a key)", REFUSES.format(policy="noeviction"))


def refused_node_type(value: str) -> str:
    """Why `storeNodeType` refuses `value`, naming the spelling it takes: gcloud writes the node types in
    lowercase with hyphens (`--node-type=standard-small`), the API and this key in capitals."""
    spelled = value.upper().replace("-", "_")
    hint = (f": that is gcloud's spelling of {spelled}, `pulumi config set {NODE_TYPE_KEY} {spelled}`"
            if spelled in NODE_TYPE_GB else "")
    return _one_of(NODE_TYPE_GB, value) + hint


def refused_sku(value: str) -> str:
    """Why `storeSku` refuses `value`: a size Azure makes only clustered says so."""
    larger = re.fullmatch(r"Balanced_B(\d+)", value)
    hint = (f": Azure takes sizes above {SKU_GB[max(SKU_GB, key=SKU_GB.__getitem__)]:g} GB only for a clustered "
            "database, and the stack's is NoCluster (docs/operations.md, \"The store's ceiling\")"
            if larger is not None and int(larger[1]) > 20 else "")
    return _one_of(SKU_GB, value) + hint


def _one_of(table: dict[str, float], value: str) -> str:
    # "" (unset: the environment's) is a value of the key, but not one to name among the sizes.
    return f"must be one of {', '.join(table)}, or unset for the environment's (got {value!r})"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:g} hours" if seconds != DAY_SECONDS else "a day"


def said(day: StoreDay, history_key: str | None = None) -> tuple[str, list[str]]:
    """The note and, where the peak day does not fit, the warning. `history_key`: the setting that shortens
    how long a session's history is kept, where there is one."""
    cap = day.cap
    kept = f"kept {hours(day.keep_seconds)}" + (f" ({history_key})" if history_key else "")
    how = (f"({cap.data_bytes / GB:,.3g} GB - {OTHER_SHARE:.0%} for the rest) ÷ {BYTES_A_SESSION:,} bytes a session "
           f"(bench/dispatcher_tier; docs/performance.md), each {kept}")
    note = (f"store ceiling ({cap.store}, {cap.size}, {cap.origin}): {day.held:,} sessions started a day: {how}; a "
            f"day at maxConcurrentSessions={day.sessions:,} of {day.call_minutes}-minute calls (expectedCallMinutes) "
            f"starts at most {day.peak_day:,} (docs/operations.md, \"Your ceiling and how to raise it\")")
    if day.peak_day <= day.held:
        return note, []
    needed = day.needed_bytes()
    warning = (f"a day at maxConcurrentSessions={day.sessions:,} of {day.call_minutes}-minute calls starts up to "
               f"{day.peak_day:,} sessions, above the {day.held:,} the store ({cap.store}, {cap.size}) holds: each is "
               f"kept {hours(day.keep_seconds)}, and {cap.full}. "
               f"It needs about {_size(needed)} of data. Raise the store: {cap.raise_it}"
               + (f", or shorten {history_key}" if history_key else "")
               + ", or lower maxConcurrentSessions; the peak day is an upper bound: a day with nights starts fewer")
    return note, [warning]


def _size(data_bytes: int) -> str:
    return f"{data_bytes / GB:,.2f} GB" if data_bytes >= GB else f"{math.ceil(data_bytes / MB):,} MB"
