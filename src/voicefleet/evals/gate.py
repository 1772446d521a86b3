"""`voicefleet releases smoke NAME --suite PATH`: a release smoked by its scenario suite. The suite
runs as `voicefleet eval PATH --release NAME` runs it (each call pinned to NAME, marked as an eval),
then its verdict goes to the dispatcher (`POST /releases/{name}/smoke` with the admin key: the suite's
id, every call's session id and the failed ones), which checks each session against its own index
and keeps the verdict in the release's record: a passing suite opens the release's gate to traffic,
a failing one shuts it (docs/evals.md, "The release gate"). Exit 0 passed, 1 failed or not recorded."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from voicefleet.api import Api, path
from voicefleet.errors import REFUSED, Failed
from voicefleet.evals.command import judged, loaded, verdict_rules
from voicefleet.evals.suite_id import suite_id
from voicefleet.evals.verdict import DEFAULT_RULES, Rules, verdict_of
from voicefleet.options import print_json, target_of, wants_json

if TYPE_CHECKING:  # the caller's libraries (aiortc) are imported by a run only
    from voicefleet.evals.outcome import CallResult


def smoke_by_suite(name: str, suite: Path, repeat: int, concurrency: int, junit: Path | None) -> None:
    ctx = click.get_current_context()
    scenarios = loaded(suite, repeat)
    judge = judged(scenarios, None, None)  # VOICEFLEET_JUDGE_URL / _MODEL, as in CI
    rules = verdict_rules()
    target = target_of(ctx)
    with Api(target) as api:
        _known(api, name)  # before any call is placed: a typo costs nothing
        from voicefleet.evals.ctrl_c import run_with_ctrl_c
        from voicefleet.evals.run import INTERRUPTED, interrupted, run_suite  # aiortc and the voice: by a run only

        finished: list[CallResult] = []

        def at_once() -> int:  # a second Ctrl-C: the calls over so far; no verdict is sent, the gate stays
            _report(finished, junit, rules, quiet=wants_json(ctx))
            click.echo(f"voicefleet: stopped at once: the report above is of the {len(finished)} calls over by "
                       "then, no verdict was recorded, and the calls still under way were not stopped (their bots "
                       "end them once the caller is gone)", err=True)
            return INTERRUPTED

        results = run_with_ctrl_c(run_suite(target.url, target.admin_key, name, scenarios, repeat, concurrency,
                                            progress=not wants_json(ctx), run_id=uuid.uuid4().hex[:12], judge=judge,
                                            finished=finished), at_once)
        _report(results, junit, rules, quiet=wants_json(ctx))
        cut_short = interrupted(results, scenarios, repeat)
        body = api.call("POST", path("releases", name, "smoke"),
                        verdict_body(suite_id(suite, scenarios), results, rules, cut_short=cut_short))
    release: dict[str, Any] = next((r for r in body.get("releases", []) if r.get("name") == name), {})
    verdict = release.get("eval") or {}
    if wants_json(ctx):
        print_json({"release": name, "eval": verdict, "smoke": release.get("smoke"), "weight": release.get("weight")})
    else:
        click.echo(f"smoke {name} by its suite: {'passed' if verdict.get('ok') else 'failed'} "
                   f"{verdict.get('passed')}/{verdict.get('runs')} (suite {str(verdict.get('suite'))[:12]}); "
                   f"{name} takes {release.get('weight', 0)}% of the traffic")
    if cut_short:
        click.echo(f"voicefleet: interrupted: {len(results)} of {len(scenarios) * repeat} calls placed; the "
                   "failed verdict above is of those", err=True)
        ctx.exit(INTERRUPTED)
    if not verdict.get("ok"):
        ctx.exit(REFUSED)


def _known(api: Api, name: str) -> None:
    names = [str(r.get("name")) for r in api.call("GET", path("releases")).get("releases", [])]
    if name not in names:
        raise Failed(f"no release {name!r} here (the releases: {', '.join(names)}); `voicefleet releases` lists them")


def _report(results: list[CallResult], junit: Path | None, rules: Rules, *, quiet: bool) -> None:
    from voicefleet.evals.report import junit as junit_xml
    from voicefleet.evals.report import table

    if junit is not None:
        junit.write_text(junit_xml(results, rules))
    if not quiet:
        click.echo(table(results, rules))


def verdict_body(suite: str, results: list[CallResult], rules: Rules = DEFAULT_RULES, *,
                 cut_short: bool = False) -> dict[str, Any]:
    """What the dispatcher records. A call that never started a session cannot be shown to it, so
    the verdict is not sent: a pass would hide that call, and the gate stays as it was. A run cut
    short (Ctrl-C) records the calls that started, as failed as its interrupted calls make it; one
    with no such failure to show is not recorded, as it proves nothing. A call inconclusive because
    its bot's host fell behind real time (evals/verdict.py) is not among the failed: a run with more
    of them than the rules allow is inconclusive and not recorded, one with fewer is recorded as its
    other calls make it (the command's report names them)."""
    if cut_short:
        results = [r for r in results if r.session_id is not None]
        if all(r.passed for r in results):
            raise Failed(f"not recorded: the run was interrupted before any call failed ({len(results)} passed); "
                         "the release's gate is as it was")
    late = [r for r in results if not r.keeps_time()]
    if any(not r.passed for r in late):  # a failure the caller's own lag may have made
        raise Failed(f"not recorded: {len(late)} of {len(results)} calls' caller fell behind real time and "
                     f"{sum(not r.passed for r in late)} of them failed, which proves nothing of the release; run the "
                     "suite where the caller has a core to itself. The release's gate is as it was")
    unstarted = [r for r in results if r.session_id is None]
    if unstarted:
        raise Failed(f"not recorded: {len(unstarted)} of {len(results)} calls started no session (the first: "
                     f"{unstarted[0].scenario}: {unstarted[0].first_failure()}); the release's gate is as it was")
    failed = [r.session_id for r in results if rules.outcome(r) == "failed"]
    verdict = verdict_of(results, rules)
    if not failed and verdict.verdict == "inconclusive":
        raise Failed(f"not recorded: {verdict.line(rules)}. The release's gate is as it was")
    return {"suite": suite, "sessions": [r.session_id for r in results], "failed": failed}
