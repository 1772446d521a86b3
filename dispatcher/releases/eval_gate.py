"""A release smoked by its scenario suite (docs/evals.md, "The release gate"): the suite's verdict,
recorded in the release's smoke state, opens or shuts the gate to its traffic as a smoke session's
verdict does. A passing suite lets a release that waited enter at its canary percent; a failing one
shuts the gate until a later run of the suite passes (a single smoke call does not outweigh it).

`RELEASE_EVAL_REQUIRED=on` asks every new release for a passing suite: a plain smoke session is then
refused, so the only way past the gate is the suite. The stable release, and the one a rollback
returns to, always stay open: a failing suite is shown for them, never a reason to refuse a rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from dispatcher.errors import ApiError
from dispatcher.releases.eval_verdict import EvalVerdict
from dispatcher.releases.smoke import Smoke
from dispatcher.releases.traffic import MAX_TEXT_CHARS, Traffic, Version
from voicefleet_settings.read import setting_bool


def eval_required(env: Mapping[str, str]) -> bool:
    """`RELEASE_EVAL_REQUIRED=on`: a new release takes traffic only once its scenario suite passed."""
    return setting_bool(env, "RELEASE_EVAL_REQUIRED")


def with_eval(traffic: Traffic, name: str, verdict: EvalVerdict, version: Version,
              checked_after: float | None = None) -> Traffic:
    """`verdict` recorded for `name`: passed, it enters at its waiting canary percent (taken from the
    stable release) unless it passed before; failed, it takes no more traffic until a suite passes.
    `checked_after`: the recorded verdict its sessions were checked to start after; one recorded since
    (a verdict sent at the same moment) refuses this one, whose calls may be older than it."""
    if name not in traffic.weights:  # listed here, not yet in the traffic (a replica ahead in a rollout)
        raise not_found(name)
    current = traffic.smoke_of(name)
    recorded = current.eval.at if current.eval is not None else None
    if recorded != checked_after:
        raise ApiError(409, "eval_verdict_raced", f"another verdict for {name} was recorded while this one was "
                       "checked: its calls may be older than that one; run the suite again", extra={"release": name})
    serving = name in (traffic.stable, traffic.previous_stable)  # a rollback's way back is never shut
    first = verdict.sessions[0] if verdict.sessions else None
    if verdict.ok or serving:
        entering = not current.passed and name != traffic.stable
        percent = min(current.canary, traffic.weights[traffic.stable]) if entering else 0
        weights = {**traffic.weights, name: traffic.weights[name] + percent,
                   traffic.stable: traffic.weights[traffic.stable] - percent}
        smoke = Smoke("passed", first, verdict.summary(), verdict.at, current.canary, verdict)
        why = f"{name}: {verdict.summary()}" + (f"; {percent}% of the traffic" if entering else "")
    else:
        weights = dict(traffic.weights)
        smoke = Smoke("failed", first, verdict.summary(), verdict.at, current.canary, verdict)
        why = f"{name}: {verdict.summary()}; it takes no more traffic until its suite passes"
    return replace(traffic, weights=weights, version=version, changed_by=verdict.by, reason=why[:MAX_TEXT_CHARS],
                   smoke={**traffic.smoke, name: smoke})


def plain_smoke_refusal(traffic: Traffic, name: str, *, required: bool) -> ApiError | None:
    """Why a smoke session (one call, no suite) may not decide `name`'s gate, or None when it may."""
    way = f"run its scenarios: `voicefleet releases smoke {name} --suite PATH`"
    if required:
        return ApiError(409, "eval_required", f"this deployment lets a new release take traffic only once its "
                        f"scenario suite has passed on it (RELEASE_EVAL_REQUIRED), not after one smoke call: {way}",
                        extra={"release": name})
    recorded = traffic.smoke_of(name).eval
    if recorded is not None and not recorded.ok:
        return ApiError(409, "eval_failed", f"{name}'s {recorded.summary()}; one smoke call does not outweigh it: "
                        f"{way} once it is fixed (a new release)", extra={"release": name, "eval": recorded.view()})
    return None


def not_found(name: str) -> ApiError:
    """A verdict for a release this deployment does not list."""
    return ApiError(404, "release_not_found", f"no release {name!r} here to record an eval verdict for; "
                    "`voicefleet releases` lists the releases", extra={"release": name})
