"""`voicefleet eval PATH`: a suite of scenarios run as real calls against a deployment, each checked
turn by turn (docs/evals.md). The caller's libraries (aiortc, the voice) are imported when it runs."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

import click
import httpx

from voicefleet.api import Api, path
from voicefleet.errors import REFUSED, Refused
from voicefleet.evals.judge import Judge, judge_from
from voicefleet.evals.outcome import SPEAK_FIRST_AFTER, CallResult
from voicefleet.evals.phone_checks import phone_refusal
from voicefleet.evals.rubric_count import rubrics
from voicefleet.evals.scenario import Scenario, ScenarioError, load_suite, schema
from voicefleet.evals.verdict import INCONCLUSIVE, Rules, verdict_of
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.settings import ADMIN_KEY_VARIABLE, API_KEY_VARIABLE, Target, api_key, is_loopback, key_in_clear
from voicefleet.tables import printable

MAX_CALLS = 1000


@click.command("eval")
@click.argument("suite", type=click.Path(exists=True, path_type=Path), required=False)
@click.option("--release", metavar="NAME", help="Run every call on this release of the bot (a pinned start).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100), help="Times each scenario runs.")
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 20),
              help="Calls under way at once.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Also write the results as JUnit XML (for CI).")
@click.option("--allow-remote", is_flag=True, help="Let the run call a dispatcher that is not on this machine.")
@click.option("--judge-url", metavar="URL", help="An OpenAI-compatible API (e.g. https://api.openai.com/v1) that "
              "judges the scenarios' rubrics; its key in VOICEFLEET_JUDGE_API_KEY. Without it rubrics are skipped.")
@click.option("--judge-model", metavar="MODEL", help="The model that judges the rubrics (with --judge-url).")
@click.option("--speak-first-after", default=SPEAK_FIRST_AFTER, show_default=True, type=click.FloatRange(0.5, 60),
              metavar="SECONDS", help="The caller speaks first when the bot has said nothing this long after the "
              "call connected (a bot that waits to be spoken to); a scenario with a greeting waits for it.")
@click.option("--sip-uri", metavar="sip:NUMBER@HOST:PORT", default=None,
              help='Where the suite\'s transport = "sip" scenarios call: the SIP edge and a number its trunk serves '
                   "(over each one's own sip_uri).")
@click.option("--schema", "show_schema", is_flag=True, help="Print the scenario files' JSON Schema and exit.")
@common_options
def eval_command(suite: Path | None, release: str | None, repeat: int, concurrency: int, junit: Path | None,
                 allow_remote: bool, judge_url: str | None, judge_model: str | None, speak_first_after: float,
                 sip_uri: str | None, show_schema: bool) -> None:
    """Run a suite of scenarios (a folder of *.toml files, or one) as real calls and check each turn.

    \b
    Each call is placed as a caller would place it, pinned to --release when given, and marked as an
    eval in its start body. A table per scenario: passed runs, turn latency (the caller's end of speech
    → the bot's first audio) p50/p95, and the first failing turn with what was expected and heard.
    Exit 0: every call passed; 1: some failed; 2: a usage error (a bad scenario names its file and
    field); 3: the dispatcher cannot be reached; 4: inconclusive (too many calls failed where the
    bot's host fell behind real time). The client key comes from VOICEFLEET_API_KEY.

    \b
    voicefleet eval examples/booking/scenarios
    voicefleet eval scenarios/ --release next --repeat 3 --junit eval.xml
    voicefleet eval scenarios/ --sip-uri sip:+14155550199@127.0.0.1:5060"""
    ctx = click.get_current_context()
    if show_schema:
        click.echo(json.dumps(schema(), indent=2))
        return
    if suite is None:
        raise click.UsageError("name a scenario file or folder: voicefleet eval PATH (--schema prints their schema)")
    scenarios = sip_targets(loaded(suite, repeat), sip_uri, allow_remote)
    judge = judged(scenarios, judge_url, judge_model)
    rules = verdict_rules()
    target = target_of(ctx)
    host = httpx.URL(target.url).host
    if not allow_remote and not is_loopback(host):
        raise click.UsageError(f"{target.url} is not on this machine: each call starts a real bot the deployment "
                               "pays for. Pass --allow-remote to run the suite there")
    key = api_key(os.environ)
    if key is not None and (warning := key_in_clear(target.url, API_KEY_VARIABLE)):
        click.echo(warning, err=True)
    with Api(Target(target.url, None, target.timeout)) as api:  # reached at all? (exit 3 if not)
        health = api.call("GET", path("healthz"))
    phone_ready(scenarios, health, target)
    from voicefleet.evals.ctrl_c import run_with_ctrl_c
    from voicefleet.evals.run import INTERRUPTED, interrupted, run_suite  # aiortc and the voice: by a run only

    finished: list[CallResult] = []

    def at_once() -> int:  # a second Ctrl-C: the calls over so far, and those under way left to their bots
        report(finished, junit, rules, as_json=wants_json(ctx))
        click.echo(f"voicefleet: stopped at once: the report above is of the {len(finished)} calls over by then; "
                   "those still under way were not stopped (their bots end them once the caller is gone)", err=True)
        return INTERRUPTED

    results = run_with_ctrl_c(run_suite(target.url, key, release, scenarios, repeat, concurrency,
                                        progress=not wants_json(ctx), run_id=uuid.uuid4().hex[:12], judge=judge,
                                        speak_first_after=speak_first_after, finished=finished), at_once)
    report(results, junit, rules, as_json=wants_json(ctx))
    if interrupted(results, scenarios, repeat):
        click.echo(f"voicefleet: interrupted: {len(results)} of {len(scenarios) * repeat} calls placed, those under "
                   "way stopped; the report above is of those", err=True)
        ctx.exit(INTERRUPTED)
    failed = [r for r in results if rules.outcome(r) == "failed"]
    if failed:
        click.echo(printable(f"voicefleet: {len(failed)} of {len(results)} calls failed; the first: "
                             f"{failed[0].scenario}: {failed[0].first_failure()} (session {failed[0].session_id})"),
                   err=True)
        ctx.exit(REFUSED)
    if verdict_of(results, rules).verdict == "inconclusive":
        ctx.exit(INCONCLUSIVE)


def report(results: list[CallResult], junit: Path | None, rules: Rules, *, as_json: bool) -> None:
    """The run's JUnit file (with --junit), then its table or its --json summary."""
    from voicefleet.evals.report import junit as junit_xml
    from voicefleet.evals.report import summary, table

    if junit is not None:
        junit.write_text(junit_xml(results, rules))
    if as_json:
        print_json(summary(results, rules))
    else:
        click.echo(table(results, rules))


def verdict_rules() -> Rules:
    """The verdict's rules from the environment (evals/verdict.py), or a usage error naming the variable."""
    try:
        return Rules.from_env(os.environ)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def loaded(suite: Path, repeat: int) -> list[Scenario]:
    """The suite's scenarios, or a usage error naming the file and field (before any call is placed)."""
    try:
        scenarios = load_suite(suite)
    except ScenarioError as error:
        raise click.UsageError(str(error)) from None
    if len(scenarios) * repeat > MAX_CALLS:
        raise click.UsageError(f"{len(scenarios)} scenarios × {repeat} is over {MAX_CALLS} calls: run fewer at once")
    return scenarios


def sip_targets(scenarios: list[Scenario], uri: str | None, allow_remote: bool) -> list[Scenario]:
    """The suite with --sip-uri in its SIP scenarios, each checked to have an edge to call, on this
    machine unless --allow-remote, and a caller to call it with."""
    from voicefleet.loadtest.sip_uri import EXAMPLE, sip_uri

    if uri is not None:
        try:
            uri = sip_uri(uri).uri
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--sip-uri") from None
        scenarios = [s.model_copy(update={"sip_uri": uri}) if s.transport == "sip" else s for s in scenarios]
    sip = [s for s in scenarios if s.transport == "sip"]
    for scenario in sip:
        if scenario.sip_uri is None:
            raise click.UsageError(f'{scenario.source}: transport = "sip" calls the SIP edge: name it with sip_uri = '
                                   f'"{EXAMPLE}" in the file, or --sip-uri')
        if not allow_remote and not is_loopback(sip_uri(scenario.sip_uri).host):
            raise click.UsageError(f"{scenario.source}: {scenario.sip_uri} is not on this machine: each call starts "
                                   "a real bot the deployment pays for. Pass --allow-remote to run the suite there")
    if sip:
        from voicefleet.loadtest.sip_line import caller_missing

        if (missing := caller_missing()) is not None:
            raise click.UsageError(missing)
    return scenarios


def judged(scenarios: list[Scenario], url: str | None, model: str | None) -> Judge | None:
    """The judge of the suite's rubrics, or None; with rubrics and no judge, a line says they are skipped."""
    try:
        judge = judge_from(url, model, os.environ)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if judge is None and (count := rubrics(scenarios)):
        click.echo(f"voicefleet: {count} rubric{'s' if count > 1 else ''} not judged: name a judge with --judge-url "
                   "and --judge-model (its key in VOICEFLEET_JUDGE_API_KEY); the deterministic checks decide", err=True)
    return judge


def phone_ready(scenarios: list[Scenario], health: object, target: Target) -> None:
    """The suite's phone scenarios checked against the deployment before any call (phone_checks.py)."""
    if not any(s.on_phone for s in scenarios):
        return
    status = None
    reader = os.environ.get(ADMIN_KEY_VARIABLE) or api_key(os.environ)  # `GET /status` is an admin's read
    with Api(Target(target.url, reader, target.timeout)) as api, contextlib.suppress(Refused):
        status = api.call("GET", path("status"))
    lines, refusal = phone_refusal(scenarios, health if isinstance(health, dict) else {},
                                   status if isinstance(status, dict) else None)
    for line in lines:
        click.echo(line, err=True)
    if refusal is not None:
        raise click.UsageError(refusal)
