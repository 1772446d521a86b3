"""Every fault of a stack file in one run of `voicefleet config check --stack`, not one a run.

The program stops at the first value it refuses. A refusal names the key it is about; when the stack
file (or `--config`) sets that key, the program runs again without it (its default in its place), so
the next refusal shows, up to `MAX_RUNS` runs. A refusal that names no key the file sets (a required key
left out) ends the search: what the program would refuse after it is not known yet. So does a refusal
of a key the search itself left out: that key is already refused, and its absence is the search's doing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from stacks.config.reader import NAMESPACE, SettingsError
from stacks.tools.dispatcher_env import DispatcherEnv

MAX_RUNS = 8  # each is a run of the program under mocks: a second or two
_KEY = re.compile(r"(?<![\w-])([a-z][a-z0-9-]*:[A-Za-z][A-Za-z0-9_]*)")
# What the program appends to a refusal for each key nobody reads (stacks/config/stack_keys.py `unknown`).
_UNREAD = re.compile(r"^\S+ is (?:no (?:stack|[\w-]+ provider) key|a key of .* stacks, and this stack's cloud)\b")
_PREFIX = "Invalid stack configuration: "

Run = Callable[[frozenset[str]], list[DispatcherEnv]]  # the program's run without the given keys


def full_key(key: str) -> str:
    """A stack key's full name (`aws:region` stays, `gcpZone` is `voicefleet:gcpZone`)."""
    return key if ":" in key else f"{NAMESPACE}:{key}"


def every_refusal(run: Run, set_keys: Mapping[str, object]) -> tuple[list[str], list[DispatcherEnv]]:
    """The program's refusals (one line each) and, when it refused nothing, the dispatcher environments
    it gave. `set_keys`: the keys the stack file and --config set (full names)."""
    refusals: list[str] = []
    dropped: set[str] = set()
    for _ in range(MAX_RUNS):
        try:
            envs = run(frozenset(dropped))
        except SettingsError as refused:
            line = " ".join(str(refused).split())
            if (subject := _KEY.findall(line)[:1]) and subject[0] in dropped:
                break  # refused for the key this search left out (`is required`): no fault of the file's
            refusals.extend(part for part in _apart(line) if part not in refusals)
            named = [key for key in _KEY.findall(line) if key in set_keys and key not in dropped]
            if not named:
                break
            dropped.add(named[0])
            continue
        return refusals, ([] if refusals else envs)
    return refusals, []


def _apart(line: str) -> list[str]:
    """A refusal, and each unread key the program named beside it, one line each (each run names
    those again beside its own refusal)."""
    if not line.startswith(_PREFIX):
        return [line]
    parts = line.removeprefix(_PREFIX).split("; ")
    unread = [part for part in parts if _UNREAD.match(part)]
    rest = "; ".join(part for part in parts if part not in unread)
    return [_PREFIX + part for part in ([rest] if rest else []) + unread]
