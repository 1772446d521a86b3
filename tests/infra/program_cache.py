"""One Pulumi program run per distinct stack, configuration and files, shared by the tests that read it.

A run under the mocks costs about 0.35 s of CPU (twice that on a loaded machine), most of it the
program's own reading of uv.lock; most tests run the same few configurations (`aws`, `gcp`, the
relay's) only to read what was registered. The mocks are deterministic by design (stacks/tools/mocks.py:
two runs of the same configuration and files give identical recordings; the plan snapshots,
tests/infra/tools/test_plan.py, hold them to that with their own runs), so a later test is handed a
deep copy of the first run instead of a second one.

What a recording does not hold is run again each time: a configuration the program refuses (the
error is raised anew), and a test that listens to the program's log (`pulumi.log` patched) hears it
from a fresh run. Files a configuration names (a bot project folder) are part of the key by their
names, sizes and modification times, so a test that edits its project between two runs gets two runs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi

from stacks.tools.mocks import Deployed, Run, run_program

_LOG_LEVELS = ("debug", "info", "warn", "error")
_UNPATCHED_LOG = {level: getattr(pulumi.log, level) for level in _LOG_LEVELS}
_RUNS: dict[tuple[object, ...], Run] = {}


def run(config: Mapping[str, str], secret_keys: Sequence[str], *, stack: str, generation: int,
        previous: Mapping[str, Any] | None = None) -> Run:
    if any(getattr(pulumi.log, level) is not original for level, original in _UNPATCHED_LOG.items()):
        return run_program(config, list(secret_keys), stack=stack, generation=generation, deployed=_deployed(previous))
    key = (tuple(sorted(config.items())), tuple(secret_keys), stack, generation, _files(config.values()),
           json.dumps(previous, sort_keys=True, default=str))
    if key not in _RUNS:
        _RUNS[key] = run_program(config, list(secret_keys), stack=stack, generation=generation,
                                 deployed=_deployed(previous))
    return copy.deepcopy(_RUNS[key])


def _deployed(previous: Mapping[str, Any] | None) -> Deployed | None:
    """An earlier `up` that left the stack's outputs `previous` (None: this is the first)."""
    return None if previous is None else Deployed(outputs=dict(previous))


def _files(values: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """Every file under a path the configuration names, by name, size and modification time."""
    found: list[tuple[str, int, int]] = []
    for value in values:
        if "/" not in value or "\n" in value:
            continue
        try:
            path = Path(value)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            files = [file for file in files if file.is_file()]
            found += [(str(file), file.stat().st_size, file.stat().st_mtime_ns) for file in files]
        except OSError:  # not a path (too long a name, say)
            continue
    return tuple(found)
