"""No one key's callers decide a verdict on what callers do: a canary breached on the caller-led
signals (callers who left within the first turn, turns left unanswered, bot turns cut off: a caller
can do each at will, on the sessions its answers say are the canary's) is breached only if the
comparison still finds it without each large key's sessions, on both sides. A real fault of the
release reaches every key's callers; one key's doing goes with its sessions. Why, and what it
leaves: docs/releases.md, "Automatic rollback"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from dispatcher.releases.health_window import Entry, Sample

CALLER_LED = ("unanswered", "left_early", "cut_off")
# A key holding less of the canary's sample moves a share by less than the conversation margin (5
# points); one holding more than half of it is most of the canary's callers, not one among them.
LEAST_SHARE, MOST_SHARE = 0.05, 0.5
Judge = Callable[[Sample, Sample], Any]


def one_key_decides(judge: Judge, ours: Sequence[Entry], theirs: Sequence[Entry], *, min_canary: int,
                    min_stable: int) -> bool:
    """Whether `judge` (which found a breach on `ours` against `theirs`) finds none without one key's
    sessions, for a key between LEAST_SHARE and MOST_SHARE of `ours` whose absence leaves each side
    its minimum sample."""
    counts = Counter(entry[5] for entry in ours if entry[5] is not None)
    for key, count in counts.most_common():
        if count < LEAST_SHARE * len(ours):
            break
        if count > MOST_SHARE * len(ours):
            continue
        rest, rest_theirs = (Sample.of(e for e in side if e[5] != key) for side in (ours, theirs))
        if rest.sessions < min_canary or rest_theirs.sessions < min_stable:
            continue
        if judge(rest, rest_theirs) is None:
            return True
    return False
