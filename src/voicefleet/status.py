"""`voicefleet status`: the deployment at a glance (docs/cli.md; the route: `GET /status`,
docs/http-api.md): sessions running, the reserve, recent starts and refusals, cost per hour."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from time import sleep
from typing import Any

import click

from voicefleet.api import call, path
from voicefleet.capacity import capacity_table
from voicefleet.errors import Refused
from voicefleet.options import common_options, print_json, wants_json
from voicefleet.tables import moment, printable, printable_lines, table


@click.command()
@click.option("--watch", metavar="SECONDS", type=click.FloatRange(min=1), default=None,
              help="Print it again every SECONDS until interrupted (with --json: one JSON object a line).")
@common_options
def status(watch: float | None) -> None:
    """Sessions running by status, release and region; the reserve by state, release and region;
    starts and refusals over the last 1, 5 and 15 minutes; cost per hour now."""
    try:
        _show(watch, as_json=wants_json(click.get_current_context()))
    except KeyboardInterrupt:  # how --watch ends
        click.echo("", err=True)


def _show(watch: float | None, *, as_json: bool) -> None:
    while True:
        body = call("GET", path("status"))
        with contextlib.suppress(Refused):  # a dispatcher without runtime settings: no capacity part
            body = {**body, "capacity": call("GET", path("capacity"))}
        if as_json and watch:
            click.echo(json.dumps(body))
        elif as_json:
            print_json(body)
        else:
            if watch:
                click.clear()
            click.echo(printable_lines(report(body)))
        if watch is None:
            return
        sleep(watch)


def report(body: Mapping[str, Any]) -> str:
    """A `GET /status` body as a person reads it: a headline per part, then its table."""
    sessions, reserve, cost = body.get("sessions", {}), body.get("reserve", {}), body.get("cost", {})
    region = body.get("region")
    parts = [
        f"{'one region' if region == 'default' else f'region {region}'} · replica {body.get('replica')} · "
        f"{body.get('provider')} · {moment(body.get('at'))}",
        "",
        f"SESSIONS  {sessions.get('running', 0)} running",
        _breakdown(sessions, ("status", "release", "region"), "SESSIONS"),
        "",
        f"RESERVE  {reserve.get('total', 0)} bots" + ("" if reserve.get("enabled", True) else
                                                     " (no reserve: every start is cold)"),
        _breakdown(reserve, ("state", "release", "region"), "BOTS"),
    ]
    if reserve.get("problem"):
        parts.append(f"  {reserve['problem']}")
    parts += ["", f"STARTS  at replica {body.get('replica')}", _starts(body.get("starts", {})), "",
              f"COST  {_per_hour(cost.get('dollars_per_hour'))}: {cost.get('running_machines', 0)} running, "
              f"{cost.get('frozen_machines', 0)} frozen machines" + (f"; {cost['note']}" if cost.get("note") else ""),
              *_recordings(body.get("recordings")), "", _places(body), *_cells(body.get("cells")),
              *_sip_edges(body.get("sip_edges"))]
    if body.get("capacity"):
        parts += ["", "CAPACITY  each value beside what is in use (`voicefleet capacity`)",
                  _indented(capacity_table(body["capacity"]))]
    return "\n".join(parts)


def _recordings(recordings: Mapping[str, Any] | None) -> list[str]:
    """RECORDINGS: the policy and where they go; a store that cannot be written, said (calls run unrecorded)."""
    if not recordings:
        return []
    lines = ["", f"RECORDINGS  {recordings.get('policy')}" + (f" → {recordings['destination']}"
                                                              if recordings.get("policy") == "on" else "")]
    if recordings.get("error"):
        lines.append(f"  not kept, calls run unrecorded: {recordings['error']}")
    return lines


def _sip_edges(edges: list[Mapping[str, Any]] | None) -> list[str]:
    """SIP EDGES: one line each, `answering` with its calls over its slots and each registering trunk's state, or
    why it did not answer (docs/sip.md, "Is the edge up?")."""
    if not edges:
        return []
    answering = sum(1 for edge in edges if edge.get("answering"))
    # what an edge says (or any server at its address) is escaped as one line: none prints a line of its own
    return ["", f"SIP EDGES  {answering} of {len(edges)} answering",
            *(f"  {printable(_sip_edge(edge))}" for edge in edges)]


def _sip_edge(edge: Mapping[str, Any]) -> str:
    if not edge.get("answering"):
        return f"sip edge {edge.get('url')}  {edge.get('error') or 'not answering'}"
    calls = edge.get("calls") or {}
    parts = [f"sip edge {edge.get('url')}", "answering" if edge.get("ready") else "answering, its SIP not up yet",
             f"{calls.get('in_progress', 0)}/{calls.get('total', 0)} calls"]
    if edge.get("draining"):
        parts.append("draining: takes no new call")
    workers = edge.get("workers")
    if workers:
        parts.append(f"{workers.get('answering')}/{workers.get('total')} workers")
    for trunk in edge.get("trunks") or []:
        state = trunk.get("registration")
        if state == "refused":
            parts.append(f"trunk {trunk.get('name')} refused {trunk.get('code')} {trunk.get('reason') or ''}".rstrip())
        elif state == "failed":
            parts.append(f"trunk {trunk.get('name')} failed: {trunk.get('reason') or 'no REGISTER sent'}")
        elif state != "not_registering":
            parts.append(f"trunk {trunk.get('name')} {state}")
    if edge.get("trunks_cut"):
        parts.append(f"{edge['trunks_cut']} more trunks not shown")
    if edge.get("refused_last_minute"):
        parts.append(f"{edge['refused_last_minute']} refused in the last minute")
    return "  ".join(parts)


def _cells(cells: list[Mapping[str, Any]] | None) -> list[str]:
    """CELLS: each cell's launches a second, running count, how long it is drained for, and why; a cell
    whose tasks could not be listed is said so (its running count is then not known here)."""
    if not cells:
        return []
    rows = [[str(c.get("name")), f"{c.get('launches_per_second', 0):g}",
             f"{c.get('running', 0)}" + (f"/{c['room']}" if c.get("room") is not None else ""),
             ("open" if c.get("drained_until") is None else f"drained until {moment(c.get('drained_until'))}")
             + (", unreadable" if c.get("unreadable") else ""),
             "; ".join(str(r) for r in (c.get("reason"), c.get("unreadable")) if r) or "-"] for c in cells]
    return ["", "CELLS  launches spread over", _indented(table(["CELL", "LAUNCHES/S", "RUNNING", "STATE", "REASON"],
                                                                rows))]


def _breakdown(part: Mapping[str, Any], groups: tuple[str, ...], counted: str) -> str:
    rows = [[group, str(name), str(count)] for group in groups
            for name, count in (part.get(f"by_{group}") or {}).items()]
    return _indented(table(["BY", "NAME", counted], rows))


def _starts(windows: Mapping[str, Any]) -> str:
    rows = [[name, str(window.get("starts", 0)), str(window.get("refused", 0)),
             ",".join(f"{code}={count}" for code, count in (window.get("refusals") or {}).items()) or "-"]
            for name, window in windows.items()]
    if not any(window.get("cold") for window in windows.values()):
        return _indented(table(["LAST", "STARTS", "REFUSED", "REFUSALS"], rows))
    for row, window in zip(rows, windows.values(), strict=True):  # starts sent cold though a warm bot waited
        row.append(",".join(f"{why}={count}" for why, count in (window.get("cold") or {}).items()) or "-")
    return _indented(table(["LAST", "STARTS", "REFUSED", "REFUSALS", "SENT COLD"], rows))


def _places(body: Mapping[str, Any]) -> str:
    rows = [["replica", str(r.get("id")), str(r.get("reserve")), f"sessions: {r.get('sessions')}"]
            for r in body.get("replicas", [])]
    rows += [["replica", str(r.get("id")), "-", f"not answering since {moment(r.get('last_seen'))}"]
             for r in body.get("replicas_not_answering") or []]
    rows += [["region", str(r.get("name")), "-" if r.get("reserve") is None else str(r.get("reserve")),
              "here" if r.get("here") else "reachable" if r.get("reachable") else "unreachable"]
             for r in body.get("regions", [])]
    return table(["WHERE", "NAME", "RESERVE", ""], rows)


def _per_hour(value: object) -> str:
    """Cents, or four decimals below a dollar: a few small machines cost fractions of a cent an hour."""
    if not isinstance(value, (int, float)):
        return "not priced"
    return (f"${value:.4f}" if 0 < value < 1 else f"${value:.2f}") + " an hour"


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
