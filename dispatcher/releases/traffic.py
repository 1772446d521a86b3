"""Traffic over the releases: each release's weight (whole percent, summing to 100), the stable
release (the last one at 100 %, where a rollback goes), the one that was stable before it (where a
rollback right after a promote goes) and the change's version, so that the latest change wins at
every replica and region. Immutable: every change makes a new `Traffic`.

Every operator action is a method here, each refusing bad input with the error that names the way
forward and changing nothing; `reconciled` is the deployment's own change when its stack lists a
release not seen before (it enters at the stack's canary percent, once, when its smoke session has
passed: smoke.py) or drops one. A release whose smoke has not passed holds weight 0: the draw and
the reserve read the weights alone, so neither ever gives it a session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.names import is_release_name
from dispatcher.releases.smoke import PASSED, Smoke, bounded

Version = tuple[int, str]  # (epoch milliseconds, the region that made it): compared as a tuple
DEPLOYMENT = "deployment"  # who changed traffic when nobody did: the stack's list, the first start
SMOKE = "smoke session"  # who changed it when a smoke session's verdict did
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
    # Each release's smoke state; a release without one counts as passed (smoke.py).
    smoke: Mapping[str, Smoke] = field(default_factory=dict)
    # The stable release before the last operator change that made another one stable (a promote, or a
    # release set to 100 %): a rollback with nothing else to undo returns there, once.
    previous_stable: str = ""

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
        # The stable release already serves; so does every release a local RELEASE_WEIGHTS names (the
        # developer chose its traffic). Any other waits for its smoke session, its share kept for then.
        chosen = set(catalogue.first_weights) | {stable}
        smoke = {n: Smoke("pending", canary=weights[n]) for n in names if n not in chosen}
        weights[stable] += sum(weights[n] for n in smoke)
        weights.update(dict.fromkeys(smoke, 0))
        return cls(weights, stable, version, reason="first configuration", listed=names,
                   generation=catalogue.generation, smoke=smoke)

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
        smoke = {n: s for n, s in self.smoke.items() if n in listed}
        if stable is None:  # the stable release is gone: the passed one carrying most traffic takes its place
            stable = max(weights, key=lambda n: (self.smoke_of(n).passed, weights[n])) if weights else listed[0]
            smoke.pop(stable, None)  # none passed: it serves regardless, as the only release left to
        weights.setdefault(stable, 0)
        weights[stable] += 100 - sum(weights.values())  # a dropped release's traffic goes back to stable
        notes = []
        for name in listed:
            if name not in weights:  # a new release enters once, at the canary percent, when its smoke passes
                weights[name] = 0
                smoke[name] = Smoke("pending", canary=catalogue.canary_percent)
                notes.append(f"{name} added, at {catalogue.canary_percent}% once its smoke session passes")
        gone = sorted(set(self.weights) - set(listed))
        if not notes and not gone and stable == self.stable:
            if self.listed == listed and self.generation == catalogue.generation:
                return self
            return replace(self, listed=listed, generation=catalogue.generation)  # the same traffic, stamped
        notes += [f"{name} no longer listed" for name in gone]
        held = {n: why for n, why in self.held.items() if n in listed}
        previous = self.previous_stable if self.previous_stable in listed and self.previous_stable != stable else ""
        return Traffic(weights, stable, version, DEPLOYMENT, "; ".join(notes), held, listed, catalogue.generation,
                       smoke, previous)

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

    def rolled_back(self, by: str, version: Version) -> Traffic:
        """Every start back to the stable release; when it already takes every start (just promoted),
        back to the release that was stable before it, which becomes the stable one again."""
        if self.weights[self.stable] != 100:
            others = ", ".join(f"{n} from {w}%" for n, w in self.weights.items() if w and n != self.stable)
            return self._changed({n: 100 if n == self.stable else 0 for n in self.weights}, by,
                                 f"rolled back to {self.stable} ({others} to 0%)", version, touched=())
        back = self.previous_stable
        if back not in self.weights:
            raise ApiError(409, "nothing_to_roll_back", f"the stable release {self.stable} takes all traffic and no "
                           "release was stable before it here; to go back further, promote an older release "
                           "(voicefleet releases promote NAME)")
        weights = {n: 100 if n == back else 0 for n in self.weights}
        rolled = self._changed(weights, by, f"rolled back from {self.stable} to {back}, the stable release before "
                               f"{self.stable} was promoted", version, touched=(back,))
        return replace(rolled, previous_stable="")  # once: a second rollback does not bounce forward again

    def breached(self, name: str, reason: str, version: Version) -> Traffic:
        """The automatic rollback: `name` to 0 (its traffic to the stable release), held with why."""
        if name == self.stable or self.weights.get(name, 0) == 0:
            return self
        weights = {**self.weights, name: 0, self.stable: self.weights[self.stable] + self.weights[name]}
        return Traffic(weights, self.stable, version, "automatic rollback", f"{name}: {reason}",
                       {**self.held, name: reason}, self.listed, self.generation, self.smoke, self.previous_stable)

    # --- smoke sessions (smoke.py) ----------------------------------------------------------------

    def smoke_of(self, name: str) -> Smoke:
        return self.smoke.get(name, PASSED)

    def smoke_started(self, name: str, session_id: str, at: float, stale_after: float, by: str,
                      version: Version) -> Traffic:
        """`name`'s smoke session `session_id` is live. Refused for a release that passed (its sessions
        are judged by the automatic rollback) and while another smoke of it runs, unless that one is
        older than `stale_after` seconds (the replica that watched it stopped before its verdict)."""
        self._known(name)
        current = self.smoke_of(name)
        if current.passed:
            raise ApiError(409, "smoke_already_passed", f"{name} passed its smoke session already and may take "
                           f"traffic: PUT /releases/{name} {{\"weight\": N}}; its sessions are judged by the "
                           "automatic rollback", extra={"session_id": current.session_id})
        if current.status == "running" and current.at is not None and at - current.at < stale_after:
            raise ApiError(409, "smoke_running", f"a smoke session of {name} is live ({current.session_id}); "
                           f"its verdict shows in GET /releases", extra={"session_id": current.session_id})
        smoke = {**self.smoke, name: Smoke("running", session_id, "", at, current.canary, current.eval)}
        return replace(self, version=version, changed_by=by, reason=f"{name}: smoke session {session_id} started",
                       smoke=smoke)

    def smoke_ended(self, name: str, session_id: str, reason: str | None, at: float, version: Version) -> Traffic:
        """The verdict on smoke session `session_id` of `name`: passed when `reason` is None (the release
        then enters at its waiting canary percent, taken from the stable release), else failed with
        why. Itself when that session is not the running one (another replica gave the verdict)."""
        current = self.smoke_of(name)
        if name not in self.weights or current.status != "running" or current.session_id != session_id:
            return self
        if reason is not None:
            smoke = {**self.smoke, name: Smoke("failed", session_id, bounded(reason), at, current.canary,
                                             current.eval)}
            why = f"{name}: smoke session failed: {reason}"
            return replace(self, version=version, changed_by=SMOKE, reason=why[:MAX_TEXT_CHARS], smoke=smoke)
        percent = min(current.canary, self.weights[self.stable]) if name != self.stable else 0
        weights = {**self.weights, name: self.weights[name] + percent, self.stable: self.weights[self.stable] - percent}
        smoke = {**self.smoke, name: Smoke("passed", session_id, "a caller heard the bot", at, current.canary,
                                             current.eval)}
        return replace(self, weights=weights, version=version, changed_by=SMOKE,
                       reason=f"{name}: smoke session passed; {percent}% of the traffic", smoke=smoke)

    def _changed(self, weights: dict[str, int], by: str, reason: str, version: Version,
                 touched: tuple[str, ...]) -> Traffic:
        for name, weight in weights.items():
            if weight > self.weights.get(name, 0) and not self.smoke_of(name).passed:
                raise not_smoke_tested(name, self.smoke_of(name))
        full = [n for n, w in weights.items() if w == 100]
        stable = full[0] if full else self.stable  # a release at 100 % is the one a rollback returns to
        previous = self.stable if stable != self.stable else self.previous_stable
        held = {n: why for n, why in self.held.items() if n not in touched and weights.get(n, 0) == 0}
        return Traffic(weights, stable, version, by, reason, held, self.listed, self.generation, self.smoke, previous)

    def _known(self, name: str) -> None:
        if name not in self.weights:
            raise unknown_release(name, self.weights)

    # --- the store's form -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "stable": self.stable, "version": list(self.version),
                "changed_by": self.changed_by, "reason": self.reason, "held": dict(self.held),
                "listed": list(self.listed), "generation": self.generation,
                "smoke": {n: s.to_json() for n, s in self.smoke.items()}, "previous_stable": self.previous_stable}

    @classmethod
    def from_json(cls, data: object) -> Traffic | None:
        """None for anything that is not a traffic record (a corrupt or foreign value is never trusted)."""
        try:
            assert isinstance(data, dict)
            weights = {str(n): int(w) for n, w in data["weights"].items()}
            ms, region = data["version"]
            smoke = {str(n): Smoke.from_json(s) for n, s in data.get("smoke", {}).items()}
            traffic = cls(weights, str(data["stable"]), (int(ms), str(region)), str(data.get("changed_by", "")),
                          str(data.get("reason", "")), {str(n): str(w) for n, w in data.get("held", {}).items()},
                          tuple(str(n) for n in data.get("listed", ())), str(data.get("generation", "")),
                          {n: s for n, s in smoke.items() if s is not None}, str(data.get("previous_stable", "")))
            assert len(traffic.smoke) == len(smoke)  # one state that is none: the record is not trusted
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
                and len(self.listed) <= MAX_RECORD_RELEASES and all(map(is_release_name, self.listed))
                and set(self.smoke) <= set(self.weights) and self.smoke_of(self.stable).passed
                and self.previous_stable in ("", *self.weights))

    def newer_than(self, other: Traffic | None) -> bool:
        return other is None or self.version > other.version


def unknown_release(name: str, live: Mapping[str, int] | tuple[str, ...]) -> ApiError:
    return ApiError(422, "unknown_release", f"no release {name!r} is live here; the live ones: {', '.join(live)}",
                    extra={"releases": list(live)})


def not_smoke_tested(name: str, smoke: Smoke) -> ApiError:
    why = {"running": f"its smoke session {smoke.session_id} is live",
           "failed": f"its smoke session failed: {smoke.reason}"}.get(smoke.status, "it has had no smoke session")
    if smoke.status == "failed" and smoke.eval is not None:
        why = f"its {smoke.eval.summary()}"
    return ApiError(409, "release_not_smoke_tested", f"{name} takes no traffic until a smoke session on a machine of "
                    f"it has answered a caller with audio, or its scenario suite has passed on it; {why}. Run "
                    f"`voicefleet releases smoke {name}` (POST /releases/{name}/smoke), or `voicefleet releases "
                    f"smoke {name} --suite PATH` to run its scenarios (the only way where RELEASE_EVAL_REQUIRED is "
                    "on), then set its weight", extra={"smoke": smoke.view()})


def _percent(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ApiError(422, "invalid_weight", f"{name}: a weight is a whole percent from 0 to 100, not {value!r}")
    return value


def as_changed(before: Traffic, after: Traffic) -> dict[str, Any]:
    """One line of the audit trail: who, when, from which weights to which, and why."""
    return {"at": after.version[0] / 1000, "by": after.changed_by, "region": after.version[1],
            "from": dict(before.weights), "to": dict(after.weights), "reason": after.reason}

