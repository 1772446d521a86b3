"""What a peak needs of the dispatcher tier, from what bench/dispatcher_tier.py measured: replicas
for the launch rate, the store's memory, and the store's share of its one thread.

Pure arithmetic (tests/bench/test_dispatcher_tier_sizing.py). Every rate here is per core of the
machine measured: a replica is one process with one event loop, so its ceiling is one core's, and
redis-server runs every command on one thread, so its ceiling is one core's too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The peak docs/performance.md sizes ("A 100,000-call peak over cells"): launches a second, in all.
PEAK_STARTS_PER_SECOND = 420.0
PEAK_LIVE_SESSIONS = 100_000
# A replica runs at most this share of the rate it sustained flat out: the rest is for a replica
# lost (its share moves to the others), bursts over the mean and the machine's other work.
REPLICA_UTILISATION = 0.5
# The store's memory beyond its data: the allocator's fragmentation and, with append-only
# persistence, the rewrite's forked copy (stacks/k8s/store.py gives maxmemory half the container).
STORE_MEMORY_FACTOR = 2.0
# A single-threaded store past this share of its thread queues every replica's round trips.
STORE_BUSY_LIMIT = 0.5


@dataclass(frozen=True)
class Measured:
    starts_per_core: float  # starts a second one core of replicas carries: 1000 / their CPU ms per start
    store_ops_per_start: float  # redis commands a start costs (INFO commandstats, scripts' commands included)
    store_cpu_ms_per_start: float  # redis-server's CPU a start costs
    store_bytes_per_session: float  # used_memory per session started (its keys live a day)
    replica_rss_bytes_per_session: float  # a replica's resident memory per session it started


@dataclass(frozen=True)
class Needs:
    replica_cores: int
    store_ops_per_second: float
    store_thread_share: float  # of one core: redis-server's CPU at the peak's rate
    store_holds: bool  # one primary's thread below STORE_BUSY_LIMIT
    store_data_bytes: float  # the sessions started in the kept day
    store_memory_bytes: float  # what to give the store: its data times STORE_MEMORY_FACTOR
    replica_rss_bytes: float  # per replica core, its share of the sessions


def replica_cores(starts_per_second: float, starts_per_core: float,
                  utilisation: float = REPLICA_UTILISATION) -> int:
    """Replica cores (one replica each) that carry `starts_per_second` at `utilisation` of their rate."""
    if starts_per_core <= 0 or not 0 < utilisation <= 1:
        raise ValueError("a positive measured rate and a utilisation in (0, 1] are needed")
    return max(1, math.ceil(starts_per_second / (starts_per_core * utilisation)))


def sessions_kept(starts_per_second: float, hours_at_peak: float, live_sessions: int) -> int:
    """Sessions whose keys the store holds at the end of `hours_at_peak` hours at the peak's rate:
    every session started in the kept day (a day: its index entry and timeline outlive it), at
    least the live ones."""
    return max(live_sessions, round(starts_per_second * min(hours_at_peak, 24.0) * 3600))


def needs(measured: Measured, *, starts_per_second: float = PEAK_STARTS_PER_SECOND,
          live_sessions: int = PEAK_LIVE_SESSIONS, hours_at_peak: float = 0.0) -> Needs:
    cores = replica_cores(starts_per_second, measured.starts_per_core)
    share = starts_per_second * measured.store_cpu_ms_per_start / 1000
    data = measured.store_bytes_per_session * sessions_kept(starts_per_second, hours_at_peak, live_sessions)
    return Needs(
        replica_cores=cores,
        store_ops_per_second=starts_per_second * measured.store_ops_per_start,
        store_thread_share=share,
        store_holds=share < STORE_BUSY_LIMIT,
        store_data_bytes=data,
        store_memory_bytes=data * STORE_MEMORY_FACTOR,
        replica_rss_bytes=measured.replica_rss_bytes_per_session * live_sessions / cores,
    )
