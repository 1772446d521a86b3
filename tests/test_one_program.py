"""One code path whatever the deployment: one process and several replicas are two implementations
of one coordination contract (dispatcher/store/coordination.py), chosen once at start-up, never a
`None` that every reader must branch on. Only the modules that wire the app (the dispatcher's top
layer in tests/test_layering.py) may still ask whether something is there."""

from __future__ import annotations

import re

from tests.test_layering import DISPATCHER_LAYERS, ROOT, layer_of, module_name

# `coordination is None`, `self._shared is not None`, `calls.store is None`, `state.shared_spent is None`…
BRANCH = re.compile(r"(coordination|shared|store)[a-z_]* is (not )?None")
WIRING = len(DISPATCHER_LAYERS) - 1
MOST_IN_WIRING = 3


def branches() -> tuple[list[str], list[str]]:
    """Lines that branch on a store being there: (outside the wiring, in it)."""
    outside: list[str] = []
    wiring: list[str] = []
    for path in sorted((ROOT / "dispatcher").rglob("*.py")):
        module = module_name(path)
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if BRANCH.search(line):
                found = f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                (wiring if layer_of(module, DISPATCHER_LAYERS) == WIRING else outside).append(found)
    return outside, wiring


def test_no_module_below_the_wiring_branches_on_whether_there_is_a_store() -> None:
    outside, _ = branches()
    assert outside == [], "take the coordination contract instead of a None for one process:\n" + "\n".join(outside)


def test_the_wiring_chooses_once() -> None:
    _, wiring = branches()
    assert len(wiring) <= MOST_IN_WIRING, "\n".join(wiring)
