"""`voicefleet calls campaign FILE.csv --from NUMBER …`: a campaign of calls out (`POST /campaigns`,
docs/phone.md#campaigns) from a CSV file whose header names `to` (each other column is the row's call data,
`runner_args.body['body']`), followed with a progress line until it finishes; its results written at the
end (`--results out.csv`). Ctrl-C stops following, not the campaign (the line says how to stop it).
`voicefleet calls campaign show|stop|resume ID` read and change one; `show ID --results out.csv` writes its
results at any time. The client's key is the one used (VOICEFLEET_API_KEY), as for `calls place`."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import click

from voicefleet.api import Api, path
from voicefleet.errors import Failed, UsageLine
from voicefleet.loadtest.plan import duration
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.status_line import StatusLine

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
POLL_SECONDS = 1.0
# A request's rows stay under the dispatcher's request bound (64 KiB): larger files go in several requests.
REQUEST_BYTES = 56_000
OUTCOMES = ("busy", "no_answer", "failed", "canceled", "voicemail", "rejected", "not_placed")


class CampaignGroup(click.Group):
    """`campaign FILE.csv …` starts one; `campaign show|stop|resume ID` a named step."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@click.group(cls=CampaignGroup)
def campaign() -> None:
    """Call a list of numbers: `campaign FILE.csv --from NUMBER`; `campaign show|stop|resume ID`.

    `campaign FILE.csv --help` lists a campaign's options (pace, concurrency, retries, results file)."""


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return duration(value) if value is not None else None


@campaign.command("start", hidden=True)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--from", "caller_id", required=True, metavar="NUMBER", help="The number the calls come from (E.164).")
@click.option("--trunk", metavar="NAME", help="The SIP edge's trunk they go out through.")
@click.option("--carrier", type=click.Choice(["sip", "twilio", "telnyx"]),
              help="`sip` (needs --trunk), `twilio` or `telnyx`; unset: sip with --trunk, else twilio.")
@click.option("--voicemail", type=click.Choice(["hang_up", "message", "flag"]), help="What a machine's answer does.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Calls in progress at once.")
@click.option("--pace", type=click.FloatRange(0, 1000, min_open=True), metavar="PER_SECOND",
              help="Calls started a second (default: the carrier account's or trunk's pace, the most allowed).")
@click.option("--retry", "retry_on", metavar="OUTCOMES", help=f"Outcomes called again: {','.join(OUTCOMES)}.")
@click.option("--retry-after", callback=_duration, metavar="TIME", help="How long after (90s, 10m, 1h).")
@click.option("--attempts", type=click.IntRange(1, 10), help="Calls to a number at most, the first included.")
@click.option("--name", metavar="TEXT", help="The campaign's name, in lists.")
@click.option("--results", "results_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a row per number (outcome, session, attempts, duration, cost) here at the end.")
@click.option("--detach", is_flag=True, help="Print the campaign's id and return, without following it.")
@common_options
def start(file: Path, caller_id: str, trunk: str | None, carrier: str | None, voicemail: str | None,
          concurrency: int, pace: float | None, retry_on: str | None, retry_after: float | None,
          attempts: int | None, name: str | None, results_file: Path | None, detach: bool) -> None:
    """Start a campaign of FILE.csv's numbers, then follow it."""
    rows = _rows(file)
    given = {"trunk": trunk, "carrier": carrier, "voicemail": voicemail, "pace": pace, "name": name}
    request: dict[str, Any] = {"from": caller_id, "concurrency": concurrency,
                               **{k: v for k, v in given.items() if v is not None}}
    retry = _retry(retry_on, retry_after, attempts)
    if retry is not None:
        request["retry"] = retry
    batches = _batches(rows)
    ctx = click.get_current_context()
    with Api(target_of(ctx), client=True) as api:
        made = api.call("POST", "/campaigns", {**request, "rows": batches[0], "start": len(batches) == 1})
        campaign_id = str(made["id"])
        for batch in batches[1:]:
            api.call("POST", path("campaigns", campaign_id, "rows"), {"rows": batch})
        if len(batches) > 1:
            api.call("POST", path("campaigns", campaign_id, "resume"))
        if not wants_json(ctx):
            click.echo(campaign_id)
        if detach:
            return
        shown = _followed(api, campaign_id)
        if results_file is not None:
            _write_results(api, campaign_id, results_file)
    _said(shown)


@campaign.command("show")
@click.argument("campaign_id", metavar="ID")
@click.option("--results", "results_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write its results so far here (CSV).")
@common_options
def show(campaign_id: str, results_file: Path | None) -> None:
    """A campaign's progress; its results with --results."""
    with Api(target_of(click.get_current_context()), client=True) as api:
        shown = api.call("GET", path("campaigns", campaign_id))
        if results_file is not None:
            _write_results(api, campaign_id, results_file)
    _said(shown)


def _step(name: str, summary: str) -> None:
    """`campaign stop ID`, `campaign resume ID`: `POST /campaigns/{id}/<name>`, its progress said."""

    @campaign.command(name, help=summary)
    @click.argument("campaign_id", metavar="ID")
    @common_options
    def step(campaign_id: str) -> None:
        with Api(target_of(click.get_current_context()), client=True) as api:
            _said(api.call("POST", path("campaigns", campaign_id, name)))


_step("stop", "No new calls (those under way go on); `resume ID` goes on where it stopped.")
_step("resume", "Place a stopped campaign's calls again.")


def _rows(file: Path) -> list[dict[str, Any]]:
    """The file's rows: `to` checked on each line, the other columns (non-empty) as its call data."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "to" not in reader.fieldnames:
                raise UsageLine(f"{file}: its first line is a header naming the `to` column (to,name,…)")
            rows = []
            for line, record in enumerate(reader, 2):
                number = (record.get("to") or "").strip()
                if not E164.fullmatch(number):
                    raise UsageLine(f"{file}, line {line}: {number[:40]!r} is not an E.164 number (+14155550100)")
                body = {k: v for k, v in record.items() if k not in ("to", None) and v not in (None, "")}
                rows.append({"to": number, **({"body": body} if body else {})})
    except UnicodeDecodeError:
        raise UsageLine(f"{file} is not UTF-8 text: save it as CSV (UTF-8)") from None
    except csv.Error as error:
        raise UsageLine(f"{file} is not CSV: {error}") from None
    if not rows:
        raise UsageLine(f"{file} has no rows under its header")
    return rows


def _retry(on: str | None, after: float | None, attempts: int | None) -> dict[str, Any] | None:
    if on is None and after is None and attempts is None:
        return None
    if on is None:
        raise UsageLine(f"--retry-after and --attempts need --retry OUTCOMES (e.g. --retry busy,no_answer): "
                        f"one or more of {', '.join(OUTCOMES)}")
    outcomes = [o.strip() for o in on.split(",") if o.strip()]
    unknown = [o for o in outcomes if o not in OUTCOMES]
    if unknown or not outcomes:
        raise UsageLine(f"--retry {on!r}: give outcomes among {', '.join(OUTCOMES)}, comma-separated")
    return {"on": outcomes, "after_seconds": after if after is not None else 600.0,
            "attempts": attempts if attempts is not None else 3}


def _batches(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows in requests within the dispatcher's bound, in order."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for row in rows:
        length = len(json.dumps(row, separators=(",", ":")).encode()) + 1
        if batches[-1] and size + length > REQUEST_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(row)
        size += length
    return batches


def _followed(api: Api, campaign_id: str) -> dict[str, Any]:
    """Its progress line until it finishes (or stops with no call under way); Ctrl-C returns to the shell."""
    line = StatusLine()
    try:
        while True:
            shown = api.call("GET", path("campaigns", campaign_id))
            done = shown["status"] == "finished" or (shown["status"] == "stopped" and shown["in_progress"] == 0)
            line.show(_progress(shown), final=done)
            if done:
                return shown
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        raise Failed(f"stopped following campaign {campaign_id}; it goes on. `voicefleet calls campaign stop "
                     f"{campaign_id}` stops its calls, `show {campaign_id} --results out.csv` writes its results") \
            from None


def _progress(shown: dict[str, Any]) -> str:
    outcomes = "  ".join(f"{k} {v}" for k, v in sorted(shown["outcomes"].items()))
    figures = [f"{shown['done'] + shown['skipped']}/{shown['rows']} done", f"placed {shown['placed']}",
               f"in progress {shown['in_progress']}", f"retrying {shown['retrying']}", f"skipped {shown['skipped']}"]
    return f"campaign {shown['id']} {shown['status']}  " + "  ".join(figures) + (f"  {outcomes}" if outcomes else "")


def _said(shown: dict[str, Any]) -> None:
    if wants_json(click.get_current_context()):
        print_json(shown)
    else:
        click.echo(_progress(shown))


def _write_results(api: Api, campaign_id: str, file: Path) -> None:
    """Every row, as the dispatcher writes them (`GET /campaigns/{id}/results?format=csv`)."""
    file.write_text(api.text(path("campaigns", campaign_id, "results"), {"format": "csv"}), encoding="utf-8")
    click.echo(f"results: {file}", err=True)
