"""Python's cyclic collector switched off for a block: only counted references free objects there, so a test
shows that what a session made goes when it ends, not at a collection that a dispatcher's collector makes
hours apart (docs/performance.md, "What an ended session leaves in the dispatcher")."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
