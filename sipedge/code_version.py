"""The edge's code as `GET /status` names it: a digest of the source of every package of this repository the
edge runs (CODE_PACKAGES: its own, the call policy it enforces, the bot channel's contract it speaks). The edge
runs from the dispatcher's image, which carries no version or revision (images/component.py: the content alone
decides its digest), so two edges show the same `version` exactly when they run the same code. It is read when
the edge starts (sipedge/__main__.py), so it names the code loaded then, not what the disk holds later."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

SHOWN_HEX = 12
# Every first-party package sipedge imports, directly or through another (tests/sip/test_code_version_coverage.py
# checks this list against the imports).
CODE_PACKAGES = ("sipedge", "botchannel", "voicefleet_settings")


@cache
def code_version() -> str:
    """`sipedge-<12 hex>`: each package's *.py files by name and content (some 60 small files, a few ms)."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted(_package_dir(package).glob("*.py")):
            digest.update(f"{package}/{path.name}".encode() + b"\0" + path.read_bytes() + b"\0")
    return f"sipedge-{digest.hexdigest()[:SHOWN_HEX]}"


def _package_dir(package: str) -> Path:
    """Where `package` is imported from (found, not imported: the edge may not have loaded it yet)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the edge's package {package} is not installed beside sipedge: run the edge from the "
                           "dispatcher's image (docs/sip.md, \"In the cloud\")")
    return Path(next(iter(spec.submodule_search_locations)))
