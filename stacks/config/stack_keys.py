"""A stack key nobody reads is a misspelling (`reserveMaxIdel`), which would otherwise leave its key's
default in place in silence: refused, naming the nearest real key.

Known: the keys Pulumi.yaml declares (the program reads it from the repository beside it, under
`pulumi up` and offline alike), DEFAULTS, and every key the program asked for while loading (secrets
that need no declaration, `storePassword`, among them).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import yaml

from dispatcher.settings.typos import nearest
from stacks.config.reader import DEFAULTS, NAMESPACE

PROJECT_FILE = Path(__file__).resolve().parents[2] / "Pulumi.yaml"


@cache
def known() -> frozenset[str]:
    """Every key of the project's namespace the program reads."""
    declared = yaml.safe_load(PROJECT_FILE.read_text()).get("config") or {}
    own = {key.split(":", 1)[1] if key.startswith(NAMESPACE + ":") else key for key in declared if
           ":" not in key or key.startswith(NAMESPACE + ":")}
    return frozenset(own | set(DEFAULTS))


def unknown(keys: Iterable[str], read: Iterable[str] = (), *, misspelt_only: bool = False) -> list[str]:
    """One line per key of the namespace that no one reads, with the key it probably meant. With
    `misspelt_only` (a load that stopped early, before reading every key), only keys a letter or two
    from a known one."""
    names = known() | frozenset(read)
    lines = []
    for full in sorted(keys):
        if not full.startswith(NAMESPACE + ":") or (name := full.split(":", 1)[1]) in names:
            continue
        close = nearest(name, names)
        if misspelt_only and close is None:
            continue
        meant = close or next(iter(difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)),
                                             None)
        hint = f": did you mean {meant}?" if meant else " (docs/pulumi.md lists the keys)"
        lines.append(f"{full} is no stack key{hint}")
    return lines
