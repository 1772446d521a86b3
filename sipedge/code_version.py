"""The edge's code as `GET /status` names it: a digest of its own source (sipedge/*.py). The edge runs
from the dispatcher's image, which carries no version or revision (images/component.py: the content
alone decides its digest), so two edges show the same `version` exactly when they run the same code."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

SHOWN_HEX = 12


@cache
def code_version() -> str:
    """`sipedge-<12 hex>`, read once (a few dozen small files)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"sipedge-{digest.hexdigest()[:SHOWN_HEX]}"
