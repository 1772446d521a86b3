"""`voicefleet loadtest`: real voice sessions against a deployment at a rate, for a time, measured
(docs/cli.md#load-testing-a-deployment). The callers' libraries (aiortc, matplotlib) are imported
when the command runs, so the rest of `voicefleet` starts as fast as it did."""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from voicefleet.api import Api, path
from voicefleet.errors import REFUSED, USAGE
from voicefleet.loadtest.carrier import carrier_check
from voicefleet.loadtest.plan import MAX_CONCURRENCY, MAX_SESSIONS_CEILING, Plan, checked, duration, rate
from voicefleet.loadtest.rail import not_local
from voicefleet.loadtest.sip_uri import EXAMPLE, SipUri, sip_uri
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.settings import API_KEY_VARIABLE, Target, api_key, is_loopback, key_in_clear

TRANSPORTS = ("webrtc", "twilio", "sip")


def _rate(ctx: click.Context, param: click.Parameter, value: str) -> float:
    return rate(value)


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    return duration(value)


@click.command()
@click.option("--rate", "per_second", default="5/min", show_default=True, callback=_rate, metavar="N/UNIT",
              help="New sessions per s, min or h, evenly spaced (5/min, 1/s).")
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(1, MAX_CONCURRENCY),
              help="Sessions under way at once, at most; one due past it is dropped (and counted).")
@click.option("--duration", "seconds", default="1m", show_default=True, callback=_duration, metavar="TIME",
              help="How long new sessions are placed (90s, 2m, 1h).")
@click.option("--transport", type=click.Choice(TRANSPORTS), default="webrtc", show_default=True,
              help="webrtc: Pipecat's SmallWebRTC client; twilio: a phone call in Twilio Media Streams' shape; sip: "
                   "a SIP call through the SIP edge (--sip-uri), G.711 RTP.")
@click.option("--sip-uri", metavar="sip:NUMBER@HOST:PORT", default=None,
              help="--transport sip: the SIP edge and a number its trunk serves (sip:+14155550199@127.0.0.1:5060).")
@click.option("--wav", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="What the caller says each turn: a 16-bit PCM WAV [default: one ~4 s English sentence].")
@click.option("--turns", default=1, show_default=True, type=click.IntRange(0, 100),
              help="Times the caller speaks and waits for the bot's reply, per session.")
@click.option("--release", metavar="NAME", help="Run every session on this release of the bot (a pinned start).")
@click.option("--speak-first-after", default=10.0, show_default=True, type=click.FloatRange(0, 60), metavar="SECONDS",
              help="The caller speaks first when the bot has said nothing this long after connecting (a bot that "
                   "waits to be spoken to); 0: never, such a session fails no_first_audio.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where result.json and chart.png go [default: ./loadtest-<UTC time>].")
@click.option("--max-sessions", default=100, show_default=True, type=click.IntRange(1, MAX_SESSIONS_CEILING),
              help="Refuse a run that would place more sessions than this.")
@click.option("--allow-remote", is_flag=True, help="Let the run target a dispatcher that is not on this machine.")
@click.option("--report", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="RESULT.json", help="No run: a saved result's tables again, and its chart (beside it, or --out).")
@common_options
def loadtest(per_second: float, concurrency: int, seconds: float, transport: str, sip_uri: str | None,
             wav: Path | None, turns: int, release: str | None, speak_first_after: float, out: Path | None,
             max_sessions: int, allow_remote: bool, report: Path | None) -> None:
    """Place real voice sessions against a dispatcher and measure each.

    \b
    Per session: POST /start → ready, → first bot audio, and each turn's end of the caller's speech
    → first bot audio; refusals and failures by code. Prints percentiles, writes result.json and
    chart.png. The client key comes from VOICEFLEET_API_KEY. Exit 0: every session placed went
    through; 1: some were refused or failed; 2: a usage error; 3: the dispatcher cannot be reached.

    \b
    voicefleet loadtest --rate 5/min --duration 2m
    voicefleet loadtest --rate 20/min --concurrency 10 --transport twilio --turns 2
    voicefleet loadtest --transport sip --sip-uri sip:+14155550199@127.0.0.1:5060
    voicefleet loadtest --report loadtest-20261126T120000Z/result.json"""
    ctx = click.get_current_context()
    if report is not None:
        _report(ctx, report, out)
        return
    target = target_of(ctx)
    host = urlsplit(target.url).hostname or ""
    if not allow_remote and not is_loopback(host):
        raise click.UsageError(f"{target.url} is not on this machine: each session there starts a real bot the "
                               f"deployment pays for. Pass --allow-remote to load-test it")
    plan = checked(Plan(per_second, concurrency, seconds, max_sessions))
    edge = sip_target(transport, sip_uri, allow_remote)
    key = api_key(os.environ)
    if key is not None and (warning := key_in_clear(target.url, API_KEY_VARIABLE)):
        click.echo(warning, err=True)
    with Api(Target(target.url, None, target.timeout)) as api:  # reached at all? (exit 3 if not) No key: least sent
        health = api.call("GET", path("healthz"))
    if not allow_remote and (why := not_local(target.url, health)) is not None:
        raise click.UsageError(why)
    said, may_run = carrier_check(transport, health)
    if said is not None:
        click.echo(said, err=True)
    if not may_run:
        ctx.exit(USAGE)
    settings = _settings(target.url, transport, plan, turns, wav, release)
    settings["speak_first_after_seconds"] = speak_first_after
    directory = out or Path(f"loadtest-{settings['started_at'].replace(':', '').replace('-', '')}")
    directory.mkdir(parents=True, exist_ok=True)
    settings["sip_uri"] = edge.uri if edge else None
    result = _run(target, key, transport, plan, wav, turns, release, allow_remote, settings, directory, edge)
    summary = result["summary"]
    _show(ctx, result)
    bad = summary["sessions"]["refused"] + summary["sessions"]["failed"]
    if bad:
        codes = {**summary["refused_by_code"], **summary["failed_by_code"]}
        click.echo(f"voicefleet: {bad} of {summary['sessions']['placed']} sessions refused or failed "
                   f"({', '.join(f'{c}: {n}' for c, n in codes.items())}); each one's code and message: "
                   f"{directory / 'result.json'}", err=True)
        ctx.exit(REFUSED)


def sip_target(transport: str, uri: str | None, allow_remote: bool) -> SipUri | None:
    """--sip-uri checked against --transport, parsed, and on this machine unless --allow-remote."""
    if (transport == "sip") != (uri is not None):
        raise click.UsageError(f"--transport sip calls the SIP edge named by --sip-uri (e.g. --sip-uri {EXAMPLE}); "
                               "pass both or neither")
    if uri is None:
        return None
    from voicefleet.loadtest.sip_line import caller_missing

    try:
        edge = sip_uri(uri)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--sip-uri") from None
    if not allow_remote and not is_loopback(edge.host):
        raise click.UsageError(f"{edge.uri} is not on this machine: each call there starts a real bot the deployment "
                               "pays for. Pass --allow-remote to load-test it")
    if (missing := caller_missing()) is not None:
        raise click.UsageError(missing)
    return edge


def _report(ctx: click.Context, path: Path, out: Path | None) -> None:
    from voicefleet.loadtest.chart import write_chart
    from voicefleet.loadtest.report import read_result, title
    from voicefleet.loadtest.summary import summarise

    try:
        settings, records, own = read_result(path)
    except ValueError as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--report") from None
    directory = out or path.parent
    directory.mkdir(parents=True, exist_ok=True)
    summary = summarise(records)
    write_chart(records, directory / "chart.png", title(settings, summary["sessions"]["placed"]))
    _show(ctx, {"settings": settings, "summary": summary, "load_generator": own, "result": str(path),
                "chart": str(directory / "chart.png")})


def _show(ctx: click.Context, result: dict[str, Any]) -> None:
    if wants_json(ctx):
        print_json(result)
        return
    from voicefleet.loadtest.result import tables

    click.echo(tables(result["summary"], result["load_generator"], result["settings"].get("transport")))
    click.echo(f"\nresult: {result['result']}\nchart:  {result['chart']}")


def _settings(url: str, transport: str, plan: Plan, turns: int, wav: Path | None, release: str | None
              ) -> dict[str, Any]:
    return {"url": url, "transport": transport, "rate_per_minute": round(plan.rate * 60, 4),
            "concurrency": plan.concurrency, "duration_seconds": plan.duration, "max_sessions": plan.max_sessions,
            "turns": turns, "wav": str(wav) if wav else "speech16k.wav (packaged)", "release": release,
            "run_id": uuid.uuid4().hex[:12], "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _run(target: Target, key: str | None, transport: str, plan: Plan, wav: Path | None, turns: int, release: str | None,
         allow_remote: bool, settings: dict[str, Any], directory: Path, edge: SipUri | None) -> dict[str, Any]:
    from voicefleet.loadtest.audio import SPEECH_WAV, read_wav
    from voicefleet.loadtest.chart import write_chart
    from voicefleet.loadtest.progress import Progress
    from voicefleet.loadtest.report import title
    from voicefleet.loadtest.result import write_result
    from voicefleet.loadtest.run import LoadTest
    from voicefleet.loadtest.session import Call
    from voicefleet.loadtest.summary import summarise

    try:
        speech = read_wav(wav or SPEECH_WAV)
    except (ValueError, EOFError, OSError) as error:
        raise click.BadParameter(f"{wav}: {error}", param_hint="--wav") from None
    # The caller's libraries loaded before the generator's own cost is counted: that is per session.
    caller = {"webrtc": "webrtc_caller", "sip": "sip_line"}.get(transport, "phone_line")
    importlib.import_module(f"voicefleet.loadtest.{caller}")
    call = Call(base_url=target.url, api_key=key, transport=transport, speech=speech, turns=turns, release=release,
                run_id=settings["run_id"], allow_remote=allow_remote,
                speak_first_after=settings["speak_first_after_seconds"], sip_uri=edge)
    test = LoadTest(plan, call, Progress(plan.sessions, plan.duration), http_timeout=target.timeout)
    settings["ends_within_seconds"] = round(plan.duration + test.ends_within, 1)
    click.echo(f"voicefleet: placing sessions for {plan.duration:g} s; the sessions under way then get at most "
               f"{test.ends_within:g} s more (each one's deadline and its stop), so the run ends within "
               f"{settings['ends_within_seconds']:g} s", err=True)
    try:
        asyncio.run(test.run())
    except KeyboardInterrupt:
        click.echo("voicefleet: interrupted: the sessions under way were hung up and stopped; the result so far "
                   "is written", err=True)
    summary = summarise(test.records)
    own = test.own_cost()
    write_result(directory / "result.json", settings, test.records, summary, own)
    write_chart(test.records, directory / "chart.png", title(settings, summary["sessions"]["placed"]))
    return {"settings": settings, "summary": summary, "load_generator": own, "result": str(directory / "result.json"),
            "chart": str(directory / "chart.png")}
