"""`voicefleet sessions` (a key's sessions, newest first; an admin key's: every key's) and
`voicefleet session [show] ID` (one session: its state, trace, error, cost when the dispatcher tells
it, its conversation in figures, and its timeline). docs/cli.md; the routes: docs/http-api.md."""

from __future__ import annotations

from typing import Any

import click

from voicefleet.api import Api, path
from voicefleet.conversation import conversation_line
from voicefleet.errors import Refused
from voicefleet.moments import moment_option
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.relay_line import relay_line
from voicefleet.tables import moment, printable, table
from voicefleet.telephony_line import telephony_line

MAX_PAGE = 100
MAX_ALL = 1000  # sessions `--all` gathers at most: a day of a busy deployment is for --json and jq


def session_api() -> Api:
    """The admin's key when VOICEFLEET_ADMIN_KEY is set (any session, each read on the dispatcher's
    audit trail), else the client's (its own name's sessions)."""
    target = target_of(click.get_current_context())
    return Api(target, client=target.admin_key is None)


@click.command()
@click.option("--status", type=click.Choice(["active", "ended", "failed"]), help="Only sessions in this state.")
@click.option("--failed", is_flag=True, help="Only failed sessions (as --status failed), with their error code.")
@click.option("--release", metavar="NAME", help="Only sessions of this release.")
@click.option("--region", metavar="NAME", help="Only sessions held by this region.")
@click.option("--since", metavar="WHEN", callback=moment_option,
              help="Only sessions started since: a time ago (10m, 2h, 1d), epoch seconds or ISO 8601 "
                   "(2026-01-01T09:00Z).")
@click.option("--eval/--no-eval", "evals", default=None,
              help="Only evals' sessions (`voicefleet eval`), or none of them; the EVAL column marks them.")
@click.option("--key", "key_name", metavar="NAME", help="Only this key name's sessions (an admin key only).")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=20, show_default=True,
              help="Sessions per page.")
@click.option("--cursor", metavar="CURSOR", help="Go on from where the last page stopped (its next cursor).")
@click.option("--all", "every", is_flag=True, help=f"Follow the pages to the end (at most {MAX_ALL} sessions).")
@common_options
def sessions(status: str | None, failed: bool, release: str | None, region: str | None, since: str | None,
             evals: bool | None, key_name: str | None, limit: int, cursor: str | None, every: bool) -> None:
    """Sessions, newest first: your key's (VOICEFLEET_API_KEY), or with only VOICEFLEET_ADMIN_KEY set
    every key's, each with its key name.

    \b
    voicefleet sessions --failed --since 2h
    voicefleet sessions --failed --since 2026-01-01T09:00Z
    voicefleet sessions --all --json | jq -r '.sessions[].session_id'"""
    target = target_of(click.get_current_context())
    client = target.api_key is not None or target.admin_key is None
    params = {"status": status, "failed": "true" if failed else None, "release": release, "region": region,
              "since": since, "eval": None if evals is None else str(evals).lower(), "key": key_name,
              "limit": limit, "cursor": cursor}
    found: list[dict[str, Any]] = []
    missing: dict[str, str] = {}  # regions that did not answer: their sessions are not in the list
    with Api(target, client=client) as api:
        while True:
            body = api.call("GET", path("sessions"), params={k: v for k, v in params.items() if v is not None})
            found += body.get("sessions", [])
            missing.update({str(u.get("region")): str(u.get("problem")) for u in body.get("unreachable_regions", [])})
            params["cursor"] = body.get("next_cursor")
            if not every or params["cursor"] is None or len(found) >= MAX_ALL:
                break
    for region, problem in sorted(missing.items()):
        click.echo(printable(f"warning: region {region} did not answer ({problem}): its sessions are not listed"),
                   err=True)
    if wants_json(click.get_current_context()):
        print_json({**body, "sessions": found})
        return
    admin = any("key" in item for item in found)
    rows = [[str(item.get("session_id")), str(item.get("status")), moment(item.get("created")),
             moment(item.get("ended")), str(item.get("release") or "-"), str(item.get("region") or "-"),
             "eval" if item.get("eval") else "-", _listed_cost(item), str(item.get("error") or ""),
             *([str(item.get("key") or item.get("caller") or "-")] if admin else [])]
            for item in found]
    click.echo(table(["SESSION", "STATUS", "CREATED", "ENDED", "RELEASE", "REGION", "EVAL", "COST $", "ERROR",
                      *(["KEY"] if admin else [])], rows))
    if params["cursor"] is not None:
        click.echo(printable(f"more: --cursor {params['cursor']}"), err=True)


@click.command("show")
@click.argument("session_id", metavar="ID")
@click.option("--transcript", is_flag=True,
              help="Print its recorded turns instead: time, who, latency, interrupted, text.")
@common_options
def show(session_id: str, transcript: bool) -> None:
    """One session: its state, trace id, the bot's error, its cost when the dispatcher reports one, and
    its timeline. With VOICEFLEET_ADMIN_KEY any session (the read is on the audit trail), else with
    VOICEFLEET_API_KEY one of its name's. `--transcript`: the call's turns, when it was recorded."""
    if transcript:
        from voicefleet.transcript import print_transcript  # the artifacts' reading, only for this

        print_transcript(session_id)
        return
    with session_api() as api:
        try:
            answer: dict[str, Any] | None = api.call("GET", path("sessions", session_id))
        except Refused as refused:  # a session its provider forgot may still have its timeline (a day)
            if refused.status != 404:
                raise
            answer, gone = None, refused
        try:
            timeline = api.call("GET", path("sessions", session_id, "timeline"))
        except Refused as refused:
            if answer is None:
                raise gone from None
            if refused.status != 404:
                raise
            timeline = {"events": []}
    if wants_json(click.get_current_context()):
        print_json({"session": answer, "timeline": timeline})
        return
    facts = [("SESSION", session_id),
             ("STATUS", str(answer.get("status")) if answer else "gone (its provider no longer knows it)"),
             ("TRACE", str((answer or {}).get("trace_id") or timeline.get("trace_id") or "-")),
             ("ERROR", str((answer or {}).get("error") or "-"))]
    if answer is not None and answer.get("eval"):  # left out of the rollback's judge and the cost figures
        facts.append(("EVAL", f"yes, on release {answer.get('release') or '-'}"))
    if answer is not None and isinstance(answer.get("cost"), dict):
        facts.append(("COST", _cost(answer["cost"])))
        if isinstance(answer["cost"].get("services"), dict):
            facts.append(("SERVICES", services_line(answer["cost"]["services"], str(answer.get("status")))))
        if (relay := relay_line(answer["cost"])) is not None:
            facts.append(("RELAY", relay))
        if (minutes := telephony_line(answer["cost"])) is not None:
            facts.append(("TELEPHONY", minutes))
    if (talk := conversation_line(timeline.get("events", []))) is not None:
        facts.append(("CONVERSATION", talk))
    width = max(len(label) for label, _ in facts)
    click.echo("\n".join(f"{label.ljust(width)}  {printable(value)}" for label, value in facts))
    events = timeline.get("events", [])
    if events:
        click.echo()
        click.echo(table(["WHEN", "EVENT", "REPLICA", "DETAIL"],
                         [[moment(e.get("at")), str(e.get("event")), str(e.get("replica") or "-"), _detail(e)]
                          for e in events]))


def _listed_cost(item: dict[str, Any]) -> str:
    """An ended session's cost as the listing keeps it (`-`: live, an eval's, or not priced)."""
    cost = item.get("cost_usd")
    return f"{cost:.6f}" if isinstance(cost, int | float) else "-"


def _cost(cost: dict[str, Any]) -> str:
    """`0.000482 USD (219.3 machine-seconds at 0.007918/hour, fly shared-cpu-1x)`; `--json` has it all."""
    if "total" not in cost:
        return ", ".join(f"{k}={v}" for k, v in cost.items())
    machine = f"{cost['machine_seconds']} machine-seconds" if cost.get("machine_seconds") is not None else ""
    if machine and cost.get("price_per_hour") is not None:
        machine += f" at {cost['price_per_hour']}/hour"
    details = [machine, " ".join(str(cost[k]) for k in ("provider", "size") if cost.get(k)),
               "estimated" if cost.get("estimated") else ""]
    shown = ", ".join(detail for detail in details if detail)
    return f"{cost['total']} {cost.get('currency', '')}".rstrip() + (f" ({shown})" if shown else "")


def services_line(services: dict[str, Any], status: str) -> str:
    """`0.000387 USD: llm gpt-4o-mini 0.000387, stt nova-3 not priced`: each service and model."""
    if not services.get("reported"):
        live = status in ("starting", "started", "joined")
        return "not reported yet (its bot reports it at its end)" if live else "not reported (its bot ended without it)"
    rows = [f"{row.get('kind')} {row.get('model') or row.get('processor')} "
            + (str(row["usd"]) if "usd" in row else "not priced") for row in services.get("usage", [])]
    return f"{services.get('usd')} USD" + (f": {', '.join(rows)}" if rows else " (none used)")


def _detail(event: dict[str, Any]) -> str:
    """An event's own fields (a failure's code and message, an end's reason), one line."""
    hidden = ("event", "at", "replica", "traceparent", "trace_id", "conversation")  # the facts show the conversation
    shown = {k: v for k, v in event.items() if k not in hidden}
    return " ".join(f"{k}={v}" for k, v in shown.items())
