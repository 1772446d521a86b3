"""`voicefleet calls place NUMBER --from NUMBER (--trunk NAME | --carrier twilio|telnyx) [--body JSON]`: a call
placed through one of the SIP edge's trunks, Twilio's Calls API or Telnyx's TeXML Calls API (`POST /calls`,
docs/phone.md#calling-out)
with the client's key, its session id printed at once, then its outcome followed on the session's timeline:
`answered` exits 0; `busy`, `no_answer`, `rejected` (with the SIP code), `failed`, `canceled`, `voicemail`
and `not_placed` exit 1, as a refusal."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import click

from voicefleet.api import Api, path
from voicefleet.campaigns import campaign
from voicefleet.errors import Failed, Refused, UsageLine
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.tables import printable

POLL_SECONDS = 1.0


@click.group()
@common_options
def calls() -> None:
    """Calls placed out: `voicefleet calls place NUMBER --from NUMBER (--trunk NAME | --carrier twilio|telnyx)`;
    a list of them: `voicefleet calls campaign FILE.csv --from NUMBER`."""


@calls.command("place")
@click.argument("number", metavar="NUMBER")
@click.option("--from", "caller_id", required=True, metavar="NUMBER", help="The number the call comes from (E.164).")
@click.option("--trunk", metavar="NAME", help="The SIP edge's trunk it goes out through.")
@click.option("--carrier", type=click.Choice(["sip", "twilio", "telnyx"]),
              help="`sip` (needs --trunk), `twilio` (its Calls API) or `telnyx` (its TeXML Calls API); unset: sip "
                   "with --trunk, else twilio.")
@click.option("--voicemail", type=click.Choice(["hang_up", "message", "flag"]),
              help="Twilio or Telnyx: what a machine's answer does (default: the dispatcher's TWILIO_VOICEMAIL or "
                   "TELNYX_VOICEMAIL).")
@click.option("--body", metavar="JSON", help="A JSON object for the bot (`runner_args.body['body']`).")
@click.option("--idempotency-key", "idempotency_key", metavar="KEY",
              help="The call's Idempotency-Key (default: a new random one each run): the same KEY again answers "
                   "with the first call's session instead of placing another.")
@click.option("--wait", "wait_seconds", type=click.FloatRange(0), default=120.0, show_default=True,
              help="How long to follow the call for its outcome; 0: print the session id and return.")
@common_options
def place(number: str, caller_id: str, trunk: str | None, carrier: str | None, voicemail: str | None,
          body: str | None, idempotency_key: str | None, wait_seconds: float) -> None:
    """Place a call to NUMBER (E.164, `+14155550100`): its session id, then how the far end answered."""
    key = idempotency_key or f"cli-{secrets.token_urlsafe(18)}"
    given = {"trunk": trunk, "carrier": carrier, "voicemail": voicemail}
    request: dict[str, Any] = {"to": number, "from": caller_id, **{k: v for k, v in given.items() if v is not None}}
    if body is not None:
        request["body"] = _body(body)
    target = target_of(click.get_current_context())
    with Api(target, client=True) as api:
        placed = _placed(api, request, key)
        session_id = str(placed["session_id"])
        if not wants_json(click.get_current_context()):
            click.echo(session_id)
        outcome = _followed(api, session_id, wait_seconds) if wait_seconds > 0 else None
    if wants_json(click.get_current_context()):
        print_json({"call": placed, "outcome": outcome})
    elif outcome is not None:
        click.echo(printable(_said(outcome)))
    if outcome is not None and outcome.get("outcome") != "answered":
        raise Failed(f"the call was not answered: {_said(outcome)} (`voicefleet session {session_id}`)")


def _placed(api: Api, request: dict[str, Any], key: str) -> dict[str, Any]:
    """`POST /calls` with its Idempotency-Key. A carrier that never answered the create may ring the call
    yet: the refusal names the key that asks again without placing a second call."""
    try:
        return api.call("POST", "/calls", request, headers={"Idempotency-Key": key})
    except Refused as refused:
        if not refused.code.endswith("_unanswered"):
            raise
        raise Refused(refused.status, refused.code, refused.message, "the call may ring yet: follow its session "
                      "(`voicefleet session SESSION_ID`), or run the command again with `--idempotency-key "
                      f"{key}` to get its session instead of placing another call") from None


def _body(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageLine(f"--body is not JSON ({error}): give an object, `--body '{{\"ticket\": \"T-1\"}}'`") from None
    if not isinstance(value, dict):
        raise UsageLine("--body must be a JSON object, `--body '{\"ticket\": \"T-1\"}'`")
    return value


def _followed(api: Api, session_id: str, wait_seconds: float) -> dict[str, Any] | None:
    """The call's `call_outcome` event (or the `ended` of one never handed over), None past the wait."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            events = api.call("GET", path("sessions", session_id, "timeline"))["events"]
        except Refused as refused:  # its first event is written just after the answer
            if refused.status != 404:
                raise
            events = []
        for event in events:
            if event.get("event") == "call_outcome":
                return dict(event)
            if event.get("event") == "ended" and event.get("reason") == "not_placed":
                return {"outcome": "not_placed", "detail": event.get("detail")}
        if time.monotonic() + POLL_SECONDS > deadline:
            click.echo(f"no outcome within {wait_seconds:g} s: `voicefleet session {session_id}` follows it", err=True)
            return None
        time.sleep(POLL_SECONDS)


def _said(outcome: dict[str, Any]) -> str:
    words = str(outcome.get("outcome"))
    if outcome.get("sip_status"):
        words += f" (SIP {outcome['sip_status']})"
    if outcome.get("detail"):
        words += f": {outcome['detail']}"
    return words


calls.add_command(campaign)
