"""Traffic over the releases: each release's weight (whole percent, summing to 100), the stable
release (the last one at 100 %, where a rollback goes) and the change's version, so that the latest
change wins at every replica and region. Immutable: every change makes a new `Traffic`.

Every operator action is a method here, each refusing bad input with the error that names the way
forward and changing nothing; `reconciled` is the deployment's own change when its stack lists a
release not seen before (it enters at the stack's canary percent, once) or drops one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.names import is_release_name

Version = tuple[int, str]  # (epoch milliseconds, the region that made it): compared as a tuple
DEPLOYMENT = "deployment"  # who changed traffic when nobody did: the stack's list, the first start
# A record's bounds (it may come from another region, or a store someone else wrote): a version is
# milliseconds exact in a double (JSON's and the store's scripts' numbers) and shown as a time; a
# region is a region name (or "" for one region); each text is far above what any change writes.
MAX_VERSION_MS = 2**53 - 1
MAX_REGION_CHARS = 20
MAX_TEXT_CHARS = 2000
MAX_RECORD_RELEASES = 100  # the stack lists at most 20; BOT_RELEASES a handful


@dataclass(frozen=True)
class Traffic:
    weights: Mapping[str, int]  # every release the deployment lists, 0-100, summing to 100
    stable: str
    version: Version
    changed_by: str = DEPLOYMENT
    reason: str = ""
    # Releases taken to 0 by the automatic rollback, with why; an operator's change to one clears it.
    held: Mapping[str, str] = field(default_factory=dict)
    # The configuration this traffic was last fitted to: its list and how new it is (Catalogue.generation).
    # During a rolling deploy replicas hold two lists; only the newer one may change the traffic's.
    listed: tuple[str, ...] = ()
    generation: str = ""

    @classmethod
    def first(cls, catalogue: Catalogue, version: Version) -> Traffic:
        """Before anything was stored: the configured first weights, else the newest at 100 % when it
        is alone, else the newest entering at the canary percent beside the one before it."""
        names = catalogue.names
        weights = dict.fromkeys(names, 0)
        if catalogue.first_weights:
            weights.update(catalogue.first_weights)
        elif len(names) == 1:
            weights[names[0]] = 100
        else:
            weights[names[-1]], weights[names[-2]] = catalogue.canary_percent, 100 - catalogue.canary_percent
        stable = max(names, key=lambda n: (weights[n], names.index(n) * -1))
        return cls(weights, stable, version, reason="first configuration", listed=names,
                   generation=catalogue.generation)

    def fits(self, catalogue: Catalogue) -> bool:
        """Whether `catalogue` may fit this traffic to its list: not when the traffic was fitted to a newer
        list (a replica not yet replaced in a rolling deploy), nor, at the same generation, to add back
        what the list the traffic has dropped (only a list that drops may win a tie). Unstamped lists (a
        local BOT_RELEASES, one process) always fit."""
        if self.generation > catalogue.generation:
            return False
        return not (self.generation == catalogue.generation != "" and self.listed
                    and not set(catalogue.names) <= set(self.listed))

    def reconciled(self, catalogue: Catalogue, version: Version) -> Traffic:
        """This traffic over the releases the deployment lists now (itself when nothing changed, or when
        the list is older than the one the traffic was fitted to: `fits`)."""
        if not self.fits(catalogue):
            return self
        listed = catalogue.names
        weights = {name: weight for name, weight in self.weights.items() if name in listed}
        stable = self.stable if self.stable in listed else None
        if stable is None:  # the stable release is gone: the one carrying most traffic takes its place
            stable = max(weights, key=weights.__getitem__) if weights else listed[0]
        weights.setdefault(stable, 0)
        weights[stable] += 100 - sum(weights.values())  # a dropped release's traffic goes back to stable
        notes = []
        for name in listed:
            if name not in weights:  # a new release enters once, at the canary percent, taken from stable
                weights[name] = min(catalogue.canary_percent, weights[stable])
                weights[stable] -= weights[name]
                notes.append(f"{name} added at {weights[name]}%")
        gone = sorted(set(self.weights) - set(listed))
        if not notes and not gone and stable == self.stable:
            if self.listed == listed and self.generation == catalogue.generation:
                return self
            return replace(self, listed=listed, generation=catalogue.generation)  # the same traffic, stamped
        notes += [f"{name} no longer listed" for name in gone]
        held = {n: why for n, why in self.held.items() if n in listed}
        return Traffic(weights, stable, version, DEPLOYMENT, "; ".join(notes), held, listed, catalogue.generation)

    # --- an operator's changes --------------------------------------------------------------------

    def with_weight(self, name: str, weight: object, by: str, version: Version) -> Traffic:
        """`name` at `weight`; the rest of the traffic to the stable release (or, for the stable
        release itself, shared among the others as they share it now)."""
        self._known(name)
        percent = _percent(weight, name)
        weights = dict(self.weights)
        if name != self.stable:
            spare = weights[self.stable] + weights[name] - percent
            if spare < 0:
                raise ApiError(422, "weights_not_100", f"{name} at {percent}% leaves {spare}% for the stable release "
                               f"{self.stable}: lower another release first, or set every weight at once with "
                               'PUT /releases {"weights": {...}}')
            weights[name], weights[self.stable] = percent, spare
        else:
            others = {n: w for n, w in weights.items() if n != name}
            if percent < 100 and not any(others.values()):
                raise ApiError(422, "weights_not_100", f"{name} is the stable release and no other release takes "
                               f"traffic: give another release the other {100 - percent}% with PUT /releases/NAME")
            total = sum(others.values())
            spare = 100 - percent
            shares = {n: (w * spare) // total if total else 0 for n, w in others.items()}
            if total:
                shares[max(others, key=others.__getitem__)] += spare - sum(shares.values())
            weights = {**shares, name: percent}
        return self._changed(weights, by, f"{name} set to {percent}%", version, touched=(name,))

    def with_weights(self, wanted: Mapping[str, Any], by: str, version: Version) -> Traffic:
        """Every weight at once: releases not named go to 0; the named ones must add up to 100."""
        if not isinstance(wanted, Mapping) or not wanted:
            raise ApiError(422, "invalid_weight", 'send {"weights": {"RELEASE": PERCENT, ...}} adding up to 100')
        for name in wanted:
            self._known(name)
        weights = dict.fromkeys(self.weights, 0)
        weights.update({name: _percent(value, name) for name, value in wanted.items()})
        if sum(weights.values()) != 100:
            raise ApiError(422, "weights_not_100", f"the weights add up to {sum(weights.values())}%, not 100%: "
                           + ", ".join(f"{n}={w}" for n, w in weights.items() if w))
        return self._changed(weights, by, "weights set", version, touched=tuple(wanted))

    def promoted(self, name: str, by: str, version: Version) -> Traffic:
        self._known(name)
        return self._changed({n: 100 if n == name else 0 for n in self.weights}, by, f"{name} promoted", version,
                             touched=(name,))

    def rolled_back(self, by: str, version: Version, reason: str = "rolled back") -> Traffic:
        """Every start back to the stable release."""
        if self.weights[self.stable] == 100:
            raise ApiError(409, "nothing_to_roll_back", f"the stable release {self.stable} already takes all "
                           "traffic; to go back further, promote an older release (POST /releases/NAME/promote)")
        return self._changed({n: 100 if n == self.stable else 0 for n in self.weights}, by, reason, version,
                             touched=())

    def breached(self, name: str, reason: str, version: Version) -> Traffic:
        """The automatic rollback: `name` to 0 (its traffic to the stable release), held with why."""
        if name == self.stable or self.weights.get(name, 0) == 0:
            return self
        weights = {**self.weights, name: 0, self.stable: self.weights[self.stable] + self.weights[name]}
        return Traffic(weights, self.stable, version, "automatic rollback", f"{name}: {reason}",
                       {**self.held, name: reason}, self.listed, self.generation)

    def _changed(self, weights: dict[str, int], by: str, reason: str, version: Version,
                 touched: tuple[str, ...]) -> Traffic:
        full = [n for n, w in weights.items() if w == 100]
        stable = full[0] if full else self.stable  # a release at 100 % is the one a rollback returns to
        held = {n: why for n, why in self.held.items() if n not in touched and weights.get(n, 0) == 0}
        return Traffic(weights, stable, version, by, reason, held, self.listed, self.generation)

    def _known(self, name: str) -> None:
        if name not in self.weights:
            raise unknown_release(name, self.weights)

    # --- the store's form -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "stable": self.stable, "version": list(self.version),
                "changed_by": self.changed_by, "reason": self.reason, "held": dict(self.held),
                "listed": list(self.listed), "generation": self.generation}

    @classmethod
    def from_json(cls, data: object) -> Traffic | None:
        """None for anything that is not a traffic record (a corrupt or foreign value is never trusted)."""
        try:
            assert isinstance(data, dict)
            weights = {str(n): int(w) for n, w in data["weights"].items()}
            ms, region = data["version"]
            traffic = cls(weights, str(data["stable"]), (int(ms), str(region)), str(data.get("changed_by", "")),
                          str(data.get("reason", "")), {str(n): str(w) for n, w in data.get("held", {}).items()},
                          tuple(str(n) for n in data.get("listed", ())), str(data.get("generation", "")))
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError, OverflowError):
            return None
        if sum(weights.values()) != 100 or traffic.stable not in weights or min(weights.values()) < 0:
            return None
        return traffic if traffic._bounded() else None

    def _bounded(self) -> bool:
        texts = (self.changed_by, self.reason, self.generation, *self.held.values())
        return (0 <= self.version[0] <= MAX_VERSION_MS and len(self.version[1]) <= MAX_REGION_CHARS
                and len(self.weights) <= MAX_RECORD_RELEASES and all(map(is_release_name, self.weights))
                and set(self.held) <= set(self.weights) and all(len(t) <= MAX_TEXT_CHARS for t in texts)
                and len(self.listed) <= MAX_RECORD_RELEASES and all(map(is_release_name, self.listed)))

    def newer_than(self, other: Traffic | None) -> bool:
        return other is None or self.version > other.version


def unknown_release(name: str, live: Mapping[str, int] | tuple[str, ...]) -> ApiError:
    return ApiError(422, "unknown_release", f"no release {name!r} is live here; the live ones: {', '.join(live)}",
                    extra={"releases": list(live)})


def _percent(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ApiError(422, "invalid_weight", f"{name}: a weight is a whole percent from 0 to 100, not {value!r}")
    return value


def as_changed(before: Traffic, after: Traffic) -> dict[str, Any]:
    """One line of the audit trail: who, when, from which weights to which, and why."""
    return {"at": after.version[0] / 1000, "by": after.changed_by, "region": after.version[1],
            "from": dict(before.weights), "to": dict(after.weights), "reason": after.reason}

