"""Pulumi.yaml's `config:` block, parsed once per content (and the whole file, by the same parser).

The program's key checks (stacks/config/stack_keys.py), the mocks' default providers
(stacks/tools/mocks.py) and the tools all read the same 45 kB file; PyYAML's pure-Python parser takes
a tenth of a second of CPU for each read, its C one (libyaml, which PyYAML's wheels carry) a few
milliseconds. The C parser reads the same documents as the Python one, through the same SafeLoader
constructors and resolvers, so what a key holds does not depend on which one ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_FILE = Path(__file__).resolve().parents[2] / "Pulumi.yaml"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # a PyYAML built without libyaml has only the Python one


def project_config(path: Path = PROJECT_FILE) -> Mapping[str, Any]:
    """The file's `config:` mapping (read only: one parse is shared by every reader); an edited file is
    parsed again, as its content names the parse."""
    return _parsed(path.read_bytes())


@lru_cache(maxsize=4)
def _parsed(content: bytes) -> Mapping[str, Any]:
    document = yaml.load(content, Loader=_LOADER)  # noqa: S506 - a SafeLoader (libyaml's parser)
    config = document.get("config") if isinstance(document, dict) else None
    return config if isinstance(config, dict) else {}


def project_document(path: Path = PROJECT_FILE) -> Any:
    """The whole file, parsed anew (the caller's own copy) by the C parser: the preflight reads it several
    times in every plan."""
    return yaml.load(path.read_bytes(), Loader=_LOADER)  # noqa: S506 - a SafeLoader (libyaml's parser)
