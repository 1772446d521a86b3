"""The runtime settings as entries that every region merges the same way, whatever order they arrive
in: each capacity value, each key's secret and each revoked name carries the `version` it was made
at (unix milliseconds, then the region's name), so two regions that took the same changes hold the
same settings.

    capacity  name      → {"value": 200 | null (the setting applies), "version", "by"}: the newest wins
    secrets   secret id → a live secret (its slow hash, never the secret: name, salt, digest, created,
                          by, version, "after": the name's revocation it was made knowing of, or null)
                          or a revoked one ({"name", "revoked", "by", salt, digest, check}): for good
    names     key name  → {"revoked": version, "by"}: every secret of the name made without knowing of
                          this revocation is refused with it
    used      key name  → {"version"} of its first use anywhere (a settings or runtime key's): a name
                          used owns its sessions and recordings, so a new key takes it with `--another`
    floors    key name  → {"version"}: its revoked secrets dropped, at or below it (runtime_floors.py)

So a revocation wins over whatever it did not see: a secret revoked anywhere stays revoked (secret
ids are random, one is never made twice), and `keys revoke NAME` in one region refuses a secret of
NAME that another region made at the same moment (`keys create NAME --another`), which did not know
of it. A secret made after its region took the revocation carries it (`after`) and stands. Nothing
depends on the regions' clocks agreeing for keys; for capacity values the newest version wins, as
for the releases' traffic.

A replica serves the views read off the entries (`views`); an admin's change is made on those, stamped (`stamped`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from dispatcher.api import runtime_capacity, runtime_floors
from dispatcher.api.runtime_keys import ID_HEX, NAME, KeyRecord
from dispatcher.errors import ApiError

Version = tuple[int, str]
Entries = dict[str, dict[str, dict[str, Any]]]
PARTS = ("capacity", "secrets", "names", "used", runtime_floors.FLOORS)
# What a revoked secret's entry keeps of it: a replica that never verified the secret still tells
# its holder (the exact secret, checked by its slow hash) that it was revoked. It opens nothing.
HASH_FIELDS = ("salt", "digest", "check")
MAX_ENTRIES = 20_000  # live secrets are at most 1000; the rest is revoked ones and values
MAX_VERSION_MS = 10**15
MAX_BY_CHARS = 200
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SECRET_ID = re.compile(f"^[0-9a-f]{{{ID_HEX}}}$")


def empty() -> Entries:
    return {part: {} for part in PARTS}


def version_of(raw: object) -> Version | None:
    """A version as JSON carries it (`[ms, region]`), or None when it is none."""
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        return None
    ms, region = raw
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= MAX_VERSION_MS:
        return None
    return (ms, region) if isinstance(region, str) and _REGION.fullmatch(region) else None


def checked(raw: object, *, makers: Collection[str] | None = None, latest_ms: int | None = None,
            most: int | None = MAX_ENTRIES) -> Entries:
    """`raw` as entries, or ValueError naming what is wrong. `makers`: the regions a version may name
    (None: any); `latest_ms`: the newest version taken (a clock far ahead would outrank every change);
    `most`: the entries taken (None: this region's own record, read whatever its size)."""
    if not isinstance(raw, Mapping) or set(raw) - set(PARTS):
        raise ValueError(f"send an object of {', '.join(PARTS)}")
    parts = {part: raw.get(part, {}) for part in PARTS}
    if not all(isinstance(part, Mapping) for part in parts.values()):
        raise ValueError(f"each of {', '.join(PARTS)} is an object")
    if most is not None and sum(len(part) for part in parts.values()) > most:
        raise ValueError(f"more than {most} entries")
    entries = empty()
    for name, entry in parts["capacity"].items():
        if not runtime_capacity.known_name(name):
            raise ValueError(f"{str(name)[:80]!r} is no capacity value")
        entries["capacity"][name] = _capacity(name, entry)
    for secret_id, entry in parts["secrets"].items():
        entries["secrets"][_named(secret_id, _SECRET_ID, "secret id")] = _secret(secret_id, entry)
    for name, entry in parts["names"].items():
        entries["names"][_named(name, NAME, "key name")] = _revoked(name, entry)
    for name, entry in parts["used"].items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"used {str(name)[:80]}: an object")
        entries["used"][_named(name, NAME, "key name")] = {"version": list(_stamp(entry, "version", f"used {name}"))}
    for name, entry in parts[runtime_floors.FLOORS].items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"floor {str(name)[:80]}: an object")
        entries[runtime_floors.FLOORS][_named(name, NAME, "key name")] = {
            "version": list(_stamp(entry, "version", f"floor {name}"))}
    for version in _versions(entries, made_only=True):
        if makers is not None and version[1] not in makers:
            raise ValueError(f"a version names region {version[1]!r}, which did not make it")
    for version in _versions(entries):
        if latest_ms is not None and version[0] > latest_ms:
            raise ValueError(f"a version is {(version[0] - latest_ms) / 1000:.0f} s further ahead of this region's "
                             "clock than is taken: set the making region's clock right (NTP)")
    return entries


def _named(name: object, form: re.Pattern[str], what: str) -> str:
    if not isinstance(name, str) or not form.fullmatch(name):
        raise ValueError(f"{str(name)[:80]!r} is no {what}")
    return name


def _by(entry: Mapping[str, Any]) -> str:
    by = entry.get("by", "")
    if not isinstance(by, str) or len(by) > MAX_BY_CHARS or not by.isprintable():
        raise ValueError(f"'by' is at most {MAX_BY_CHARS} printable characters")
    return by


def _stamp(entry: Mapping[str, Any], field: str, what: str) -> Version:
    version = version_of(entry.get(field))
    if version is None:
        raise ValueError(f"{what} has no {field} ([unix ms, region])")
    return version


def _capacity(name: str, entry: object) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ValueError(f"capacity {name}: an object")
    value = entry.get("value")
    if value is not None:
        try:  # within the bounds PATCH /capacity keeps, whichever region it was made in
            value = runtime_capacity.value_checked(name, value)
        except ApiError as exc:
            raise ValueError(f"capacity {exc.message}") from None
    return {"value": value, "version": list(_stamp(entry, "version", f"capacity {name}")), "by": _by(entry)}


def _secret(secret_id: str, entry: object) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ValueError(f"secret {secret_id}: an object")
    name = _named(entry.get("name"), NAME, "key name")
    if "revoked" in entry:
        return {"name": name, "revoked": list(_stamp(entry, "revoked", f"secret {secret_id}")), "by": _by(entry),
                **_slow_hash(secret_id, entry)}
    record = KeyRecord.from_json(secret_id, dict(entry))
    if record is None:
        raise ValueError(f"secret {secret_id}: a name, a salt (32 hex), a digest (64 hex) and when it was made")
    after = entry.get("after")
    if after is not None and version_of(after) is None:
        raise ValueError(f"secret {secret_id}: 'after' is a version or null")
    return {**record.to_json(), "by": _by(entry), "version": list(_stamp(entry, "version", f"secret {secret_id}")),
            "after": after and list(after)}


def _slow_hash(secret_id: str, entry: Mapping[str, Any]) -> dict[str, str]:
    """A revoked secret's slow hash, where its entry kept one well-shaped (else none: an entry made
    before revocations kept it, or a key of DISPATCHER_API_KEYS, which has none)."""
    hashed = {field: entry[field] for field in HASH_FIELDS if field in entry}
    record = KeyRecord.from_json(secret_id, {"name": entry.get("name"), "created": 0, **hashed})
    return {field: value for field, value in record.to_json().items() if field in HASH_FIELDS} if record else {}


def _revoked(name: str, entry: object) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ValueError(f"name {name}: an object")
    return {"revoked": list(_stamp(entry, "revoked", f"name {name}")), "by": _by(entry)}


def _versions(entries: Entries, made_only: bool = False) -> list[Version]:
    """Every version the entries carry; `made_only`: only those of the changes themselves, not the
    revocation a secret was made knowing of (`after`), which another region made."""
    found = [version_of(e["version"]) for e in entries["capacity"].values()]
    for entry in entries["secrets"].values():
        found += [version_of(entry.get("revoked") or entry["version"])]
        found += [version_of(entry["after"])] if entry.get("after") and not made_only else []
    found += [version_of(e["revoked"]) for e in entries["names"].values()]
    found += [version_of(e["version"]) for e in entries["used"].values()]
    found += [version_of(e["version"]) for e in entries[runtime_floors.FLOORS].values()]
    return [version for version in found if version is not None]


def newest_ms(entries: Entries) -> int:
    return max((version[0] for version in _versions(entries)), default=0)


def merged(ours: Entries, theirs: Entries) -> Entries:
    """Both regions' changes, the same whichever is `ours`: per entry the newest, a revocation over any
    secret, and a secret one side dropped under its name's floor dropped (runtime_floors)."""
    result: Entries = {part: dict(ours[part]) for part in PARTS}
    for name, entry in theirs["capacity"].items():
        held = result["capacity"].get(name)
        if held is None or _v(entry["version"]) > _v(held["version"]):
            result["capacity"][name] = entry
    floors = runtime_floors.FLOORS
    for secret_id, entry in theirs["secrets"].items():
        held = result["secrets"].get(secret_id)
        if held is None and not runtime_floors.covers(ours[floors], entry):
            result["secrets"][secret_id] = entry
        elif held is not None and _secret_rank(entry) > _secret_rank(held):
            result["secrets"][secret_id] = entry
    for secret_id, entry in ours["secrets"].items():
        if secret_id not in theirs["secrets"] and runtime_floors.covers(theirs[floors], entry):
            del result["secrets"][secret_id]
    result[floors] = runtime_floors.merged_floors(ours[floors], theirs[floors])
    result["secrets"] = runtime_floors.below_floors(result["secrets"], result[floors])
    for name, entry in theirs["names"].items():
        held = result["names"].get(name)
        if held is None or _v(entry["revoked"]) > _v(held["revoked"]):
            result["names"][name] = entry
    for name, entry in theirs["used"].items():  # a name's first use anywhere: the oldest version
        held = result["used"].get(name)
        if held is None or _v(entry["version"]) < _v(held["version"]):
            result["used"][name] = entry
    return result


def _v(raw: Any) -> Version:
    return (int(raw[0]), str(raw[1]))


def _secret_rank(entry: Mapping[str, Any]) -> tuple[bool, Version]:
    """Revoked over live; then the newer."""
    revoked = entry.get("revoked")
    return (revoked is not None, _v(revoked if revoked is not None else entry["version"]))


def alive(entries: Entries, entry: Mapping[str, Any]) -> bool:
    """Whether a secret's entry opens anything: not revoked, nor its name since it was made."""
    if "revoked" in entry:
        return False
    name = entries["names"].get(entry["name"])
    return name is None or (entry.get("after") is not None and _v(entry["after"]) >= _v(name["revoked"]))


def views(entries: Entries) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a replica serves: the capacity values by name, the live keys' records by secret id."""
    capacity = {name: e["value"] for name, e in entries["capacity"].items() if e["value"] is not None}
    keys = {secret_id: KeyRecord.from_json(secret_id, e).to_json()  # type: ignore[union-attr]
            for secret_id, e in entries["secrets"].items() if alive(entries, e)}
    return capacity, keys


def revoked_records(entries: Entries) -> dict[str, dict[str, Any]]:
    """The secrets that open nothing any more and whose slow hash was kept, by secret id, as records
    (KeyRecord's JSON): revoked one by one, or with their name."""
    found = {}
    for secret_id, entry in entries["secrets"].items():
        if not alive(entries, entry) and "digest" in entry:
            found[secret_id] = {"name": entry["name"], "created": entry.get("created", 0),
                                **{field: entry[field] for field in HASH_FIELDS if field in entry}}
    return found


def of_views(capacity: Mapping[str, Any], keys: Mapping[str, Any], version: Version) -> Entries:
    """Entries for a record kept before entries were (its values and keys as made at `version`)."""
    entries = empty()
    one: list[tuple[str, str, Any]] = [("capacity", name, {"value": value, "version": list(version), "by": ""})
                                       for name, value in capacity.items()]
    one += [("secrets", secret_id, {**record, "version": list(version), "after": None})
            for secret_id, record in keys.items() if isinstance(record, Mapping)]
    for part, name, entry in one:  # each on its own: a value out of bounds loses that value only
        try:
            entries[part].update(checked({part: {name: entry}})[part])
        except ValueError:
            continue
    return entries


def stamped(entries: Entries, before: tuple[Mapping[str, Any], Mapping[str, Any]],
            after: tuple[Mapping[str, Any], Mapping[str, Any]], revoked_names: Collection[str], by: str,
            version: Version, used_names: Collection[str] = ()) -> tuple[Entries, Entries]:
    """The entries after an admin's change (the views `before` → `after`, names revoked whole) or
    this region's first uses of key names (`used_names`), and what changed in them, to push: each
    stamped with `version`."""
    delta = empty()
    stamp = list(version)
    for name in used_names:
        if name not in entries["used"]:
            delta["used"][name] = {"version": stamp}
    (capacity_before, keys_before), (capacity_after, keys_after) = before, after
    for name in set(capacity_before) | set(capacity_after):
        if capacity_before.get(name) != capacity_after.get(name):
            delta["capacity"][name] = {"value": capacity_after.get(name), "version": stamp, "by": by}
    for name in revoked_names:
        delta["names"][name] = {"revoked": stamp, "by": by}
    for secret_id, record in keys_after.items():
        if secret_id not in keys_before:
            known = entries["names"].get(record["name"])  # made knowing of the name's revocation: it stands
            delta["secrets"][secret_id] = {**record, "version": stamp, "after": known and known["revoked"]}
    for secret_id, record in keys_before.items():
        if secret_id not in keys_after:
            delta["secrets"][secret_id] = {"name": record["name"], "revoked": stamp, "by": by,
                                           **{field: record[field] for field in HASH_FIELDS if field in record}}
    return merged(entries, delta), delta


def digest(entries: Entries) -> str:
    """The same for the same entries in every region: what a region's state answer says it holds (no
    floors yet: the same as a region's whose dispatcher predates them, so an upgrade reads nothing)."""
    shown = {part: held for part, held in entries.items() if held or part != runtime_floors.FLOORS}
    text = json.dumps(shown, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]

