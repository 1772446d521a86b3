"""No one key decides a canary's verdict: in each release's sample, the canary's and the stable's,
each key's sessions count at most KEY_SHARE_SLACK times its share of the other release's sessions
(the draw splits an honest key's sessions by weight, so its share is about the same on both sides,
however full either window is). A key whose sessions crowd onto one release (its configured
release, the sessions it leaves there while it drops the others') counts its newest ones only.
Why this bound and not another: docs/releases.md, "Automatic rollback"."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from dispatcher.releases.health_window import Entry

# Twice its share: a key's honest share on one release wanders around its share on the other (a
# binomial draw) and is rarely cut; one session more on the other side (`+ 1`) lets a key with none
# of the other release's sessions keep a few.
KEY_SHARE_SLACK = 2.0


def within_key_shares(ours: Sequence[Entry], theirs: Sequence[Entry]) -> list[Entry] | None:
    """`ours` (one release's entries, oldest first) with each key's cut to its bound, or None when
    no key is past it. `theirs`: the other release's entries. Entries without a key are kept."""
    mine = Counter(entry[5] for entry in ours if entry[5] is not None)
    if not mine:
        return None
    other = Counter(entry[5] for entry in theirs if entry[5] is not None)
    # Its share of ours at most twice its share of theirs: compared per release, so two full windows
    # of the same size bound a key as well as a young canary's does.
    scale = KEY_SHARE_SLACK * len(ours) / (len(theirs) + 1)
    allowed = {key: math.ceil(scale * (other[key] + 1)) for key in mine}
    if all(n <= allowed[key] for key, n in mine.items()):
        return None
    counted: Counter[str] = Counter()
    kept: list[Entry] = []
    for entry in reversed(ours):  # each key's newest sessions are the ones kept
        key = entry[5]
        if key is not None:
            if counted[key] >= allowed[key]:
                continue
            counted[key] += 1
        kept.append(entry)
    kept.reverse()
    return kept
