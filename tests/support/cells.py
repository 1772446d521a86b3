"""Sessions whose home is a given cell (dispatcher/machines/cells.py), for the tests of providers
that launch over cells (ECS_CELLS, CLOUDRUN_CELLS)."""

from __future__ import annotations

import secrets
from typing import Any


def homed_in(machines: Any, cell: str, n: int = 1) -> list[str]:
    """`n` new session ids whose home in `machines.cells` is `cell`."""
    found: list[str] = []
    while len(found) < n:
        session = f"s-{secrets.token_hex(6)}"
        if machines.cells.home(session) == cell:
            found.append(session)
    return found
