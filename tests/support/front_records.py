"""A SIP edge's record of its Kamailio front (sipedge/front_leftover.py) as the tests make and take it: the one an
edge killed outright leaves behind, and the next start's look at it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from sipedge.front_leftover import FrontRecord, claim_record


def write_record(path: Path, pid: int, config: Path) -> None:
    """Records the Kamailio running as `pid` on `config`, as the edge writes it, no lock held: as an edge killed
    outright leaves it."""
    path.write_text(json.dumps({"edge": os.getpid(), **asdict(FrontRecord.of(pid, config))}))
    path.chmod(0o600)


def end_leftover(path: Path, kamailio: str) -> FrontRecord | None:
    """What an edge's start does first: ends the front `path` records if it still runs (`claim_record`), then lets
    the record go (removed); the record it ended, or None. Raises EdgeRunning when a live edge holds it."""
    claim = claim_record(path, kamailio)
    claim.close()
    return claim.ended
