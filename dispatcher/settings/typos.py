"""A variable that looks like a voicefleet setting but that no setting reads: a misspelling, which
would otherwise be ignored in silence (`RESERVE_MAX_IDEL`). Reported with the nearest real name.

"Looks like" is narrow on purpose: the environment also holds a shell's, a cloud's and the bot's
variables (PATH, AWS_REGION, ECS_CONTAINER_METADATA_URI_V4, FLY_APP_NAME, KUBERNETES_SERVICE_HOST,
a bot's DEEPGRAM_API_KEY). A name is reported only when it is one edit from a setting's name, or
two edits and sharing its first word; names `LOCAL_BOT_ENV` hands to the bots are theirs."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from voicefleet_settings.names import by_name

# First words shared with the platforms' own variables: a name two edits from ours there is theirs.
FOREIGN_PREFIXES = frozenset({"AWS", "OTEL", "AZURE", "GOOGLE", "KUBERNETES", "ECS", "FLY", "MODAL", "PYTHON"})
# A platform's own variable one edit from ours: Cloud Run sets CLOUD_RUN_JOB in a job's containers;
# google-auth reads GCE_METADATA_ROOT (beside GCE_METADATA_HOST).
FOREIGN_NAMES = frozenset({"CLOUD_RUN_JOB", "GCE_METADATA_ROOT"})
# A family an SDK reads whole: AWS_ENDPOINT_URL_<SERVICE> for every AWS service (AWS_ENDPOINT_URL_SQS is
# one letter from our AWS_ENDPOINT_URL_STS), never a misspelling of ours.
FOREIGN_FAMILIES = ("AWS_ENDPOINT_URL_",)


def edits(a: str, b: str) -> int:
    """Letters dropped, added, changed or two neighbours swapped (optimal string alignment distance)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def nearest(name: str, known: Iterable[str] | None = None) -> str | None:
    """The setting a misspelt name meant, or None when it is no setting's misspelling."""
    # Two edits at most: only names of about its length can be meant (and comparing fewer keeps start-up quick).
    names = [n for n in (known if known is not None else by_name()) if abs(len(n) - len(name)) <= 2]
    candidates = difflib.get_close_matches(name, names, n=6, cutoff=0.7)
    if not candidates:
        return None
    best = min(candidates, key=lambda c: (edits(name, c), -difflib.SequenceMatcher(None, name, c).ratio(), c))
    distance = edits(name, best)
    first = name.split("_", 1)[0]
    if distance == 1 and len(best) >= 4:
        return best
    if distance == 2 and first == best.split("_", 1)[0] and first not in FOREIGN_PREFIXES:
        return best
    return None


def spelt_as_key(name: str) -> str | None:
    """The setting a stack key's spelling stands for (maxConcurrentSessions: MAX_CONCURRENT_SESSIONS),
    its letters alike but for case and underscores; None for any other name."""
    letters = name.replace("_", "").upper()
    return next((setting for setting in sorted(by_name()) if setting.replace("_", "") == letters), None)


def misspelt(env: Mapping[str, str]) -> list[str]:
    """One line per misspelt variable of an environment, naming the setting it probably meant."""
    known = by_name()
    theirs = {n.strip() for n in env.get("LOCAL_BOT_ENV", "").split(",")}
    lines = []
    for name in sorted(env):
        if name not in theirs and not name.isupper() and (setting := spelt_as_key(name)) is not None:
            # `maxConcurrentSessions=3`: a stack key's spelling, which no setting reads
            lines.append(f"{name} is no setting: did you mean {setting}? ({name} is how a stack file spells it)")
            continue
        if (name in known or name in theirs or name in FOREIGN_NAMES or name.startswith(FOREIGN_FAMILIES)
                or not name.isupper()):
            continue
        if (meant := nearest(name)) is not None:
            lines.append(f"{name} is no setting: did you mean {meant}?")
    return lines


def deprecated(env: Mapping[str, str]) -> list[str]:
    """One line per old name still set."""
    known = by_name()
    return [f"{name} is an old name of {known[name].name}: rename it" for name in sorted(env)
            if name in known and known[name].name != name]
