"""Revoked runtime secrets compacted into one floor per key name, so the runtime record stays bounded
however often keys are rotated. A revoked entry (with its slow hash) is dropped past
`REVOKED_KEYS_KEEP_DAYS` or the newest `REVOKED_KEYS_KEPT`, and its name's floor rises to its
revocation's version: every secret of the name made at or before the floor that the record does not
hold is revoked. The merge (runtime_entries.merged) keeps the higher floor and drops a live secret the
other side's floor covers, so a region that was away or an old store copy never brings one back.
Entries without a slow hash (DISPATCHER_API_KEYS' revocations) are never dropped. docs/security.md,
"Revoked runtime keys are compacted"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicefleet_settings.read import setting_float, setting_int

FLOORS = "floors"
KEEP_DAYS = 30.0
MOST_KEPT = 2_000  # about 460 kB of revoked secrets: read whole by each replica at each change
DAY_MS = 86_400_000

Part = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Keeping:
    """How long and how many revoked secrets the record keeps with their slow hash."""

    days: float = KEEP_DAYS
    most: int = MOST_KEPT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Keeping:
        return cls(setting_float(env, "REVOKED_KEYS_KEEP_DAYS"), setting_int(env, "REVOKED_KEYS_KEPT"))


KEEPING = Keeping()


def _v(raw: Any) -> tuple[int, str]:
    return (int(raw[0]), str(raw[1]))


def compactable(entry: Mapping[str, Any]) -> bool:
    """A revoked runtime secret whose entry kept its slow hash: the only entries a floor replaces."""
    return "revoked" in entry and "digest" in entry


def covers(floors: Mapping[str, Mapping[str, Any]], entry: Mapping[str, Any]) -> bool:
    """Whether `floors` (another record's) says `entry`'s secret was revoked there: a live one by the
    version it was made at, a compactable revoked one by its revocation's."""
    floor = floors.get(entry["name"])
    if floor is None or ("revoked" in entry and not compactable(entry)):
        return False
    return _v(entry.get("revoked") or entry["version"]) <= _v(floor["version"])


def merged_floors(ours: Part, theirs: Part) -> Part:
    """Each name's higher floor."""
    floors = dict(ours)
    for name, floor in theirs.items():
        if name not in floors or _v(floor["version"]) > _v(floors[name]["version"]):
            floors[name] = floor
    return floors


def below_floors(secrets: Part, floors: Part) -> Part:
    """`secrets` less the revoked ones at or below their name's floor (the record's canonical form)."""
    return {secret_id: entry for secret_id, entry in secrets.items()
            if not (compactable(entry) and covers(floors, entry))}


def compacted(secrets: Part, floors: Part, now_ms: int, keeping: Keeping) -> tuple[Part, Part]:
    """The secrets and floors once the revoked secrets older than `keeping.days`, or past the newest
    `keeping.most`, are dropped. Only the entries decide which (never the moment beyond their age),
    so two regions holding the same entries compact them alike."""
    revoked = sorted((_v(entry["revoked"]), secret_id) for secret_id, entry in secrets.items() if compactable(entry))
    oldest_kept = now_ms - int(keeping.days * DAY_MS)
    dropped = [(version, secret_id) for n, (version, secret_id) in enumerate(revoked)
               if version[0] <= oldest_kept or n < len(revoked) - keeping.most]
    if not dropped:
        return secrets, floors
    raised = dict(floors)
    for version, secret_id in dropped:
        name = secrets[secret_id]["name"]
        if name not in raised or version > _v(raised[name]["version"]):
            raised[name] = {"version": list(version)}
    return below_floors(secrets, raised), raised
