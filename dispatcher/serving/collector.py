"""The garbage collector set for a server: what exists when it starts serving is frozen, and the
young generation is collected every `YOUNG_THRESHOLD` allocations rather than every 700.

A start allocates a few hundred container objects and leaves almost no cycles, yet at 700 the
collector ran its middle and full generations over every live session's objects, a third of a
start's CPU while collecting nothing (the measurement: docs/performance.md, "A start's CPU")."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    gc.freeze()  # the modules, the app, its routes and models: alive as long as the process
    gc.set_threshold(YOUNG_THRESHOLD)  # the older generations keep their own thresholds
