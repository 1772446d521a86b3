"""`voicefleet releases smoke NAME`: one real call to a release before it takes traffic. The
dispatcher starts a session on it (`POST /releases/{name}/smoke`, admin key: the answer a start
gives, plus `"smoke": true`), this command calls it as a caller does (the load test's WebRTC caller,
speaking its WAV once; a Daily session's room is printed for a person to join instead), then reads
the dispatcher's verdict, judged from the bot's own reports, in
`GET /releases` (`"smoke": {"status", "session_id", "reason", "at"}`) until it is `passed` or
`failed`. Exit 0 passed, 1 failed (or no verdict in time), 3 unreachable."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from voicefleet.api import Api, path
from voicefleet.errors import REFUSED, Refused, Unreachable
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.tables import printable

VERDICTS = ("passed", "failed")
POLL_SECONDS = 1.0
AUDIO_TIMEOUT = 60.0  # connected → the bot's first audio
LISTEN_SECONDS = 15.0  # the end of the caller's speech → a whole reply


@click.command()
@click.argument("name")
@click.option("--wav", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="What the caller says: a 16-bit PCM WAV [default: one ~4 s English sentence].")
@click.option("--wait", "wait_seconds", default=180.0, show_default=True, type=click.FloatRange(1, 3600),
              help="Seconds to wait for the dispatcher's verdict.")
@click.option("--suite", type=click.Path(exists=True, path_type=Path), default=None, metavar="PATH",
              help="Smoke it by its scenario suite (a folder of *.toml, or one): every call pinned to NAME, "
                   "the verdict recorded as its smoke.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100),
              help="With --suite: times each scenario runs.")
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 20),
              help="With --suite: calls under way at once.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="With --suite: also write the results as JUnit XML (for CI).")
@common_options
def smoke(name: str, wav: Path | None, wait_seconds: float, suite: Path | None, repeat: int, concurrency: int,
          junit: Path | None) -> None:
    """Call release NAME once, as a caller would, and print the dispatcher's verdict; or, with --suite,
    run its scenarios against it and record their verdict (docs/evals.md): a passing suite lets it
    take traffic, a failing one keeps it out.

    Exit 0: passed; 1: failed, or no verdict within --wait (with --suite: not recorded)."""
    ctx = click.get_current_context()
    if suite is not None:
        if wav is not None:
            raise click.UsageError("--wav is the one smoke call's speech; a suite's scenarios say their own")
        from voicefleet.evals.gate import smoke_by_suite

        smoke_by_suite(name, suite, repeat, concurrency, junit)
        return
    target = target_of(ctx)
    with Api(target) as api:
        answer = api.call("POST", path("releases", name, "smoke"))
        session_id = answer.get("session_id") or answer.get("sessionId")
        heard = _call(target.url, target.admin_key, answer, wav, failed=lambda: _failed(api, name, session_id))
        verdict = _verdict(api, name, session_id, wait_seconds)
    if wants_json(ctx):
        print_json({"release": name, "smoke": verdict, "caller": heard})
    else:
        caller = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in heard.items())
        reason = f": {verdict['reason']}" if verdict.get("reason") else ""
        click.echo(printable(f"smoke {name}: {verdict.get('status')}{reason} (session {verdict.get('session_id')}; "
                             f"the caller: {caller})"))
    if verdict.get("status") != "passed":
        ctx.exit(REFUSED)


def _call(base_url: str, key: str | None, answer: dict[str, Any], wav: Path | None,
          failed: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """The caller's side: what it heard, or why it heard nothing. The verdict is the dispatcher's: once
    it says failed (`failed()`, asked every POLL_SECONDS), the caller hangs up rather than wait on."""
    if "offer_url" not in answer:
        if answer.get("room_url"):  # a Daily session: a person is the caller; the verdict is the bot's
            click.echo(f"join {answer['room_url']} and say something: the smoke passes when you hear the "
                       "bot", err=True)
            return {"caller": "a person in the Daily room"}
        return {"skipped": "the smoke session has no offer_url (not a WebRTC session)"}
    import asyncio  # here, as the caller's libraries: `voicefleet --help` imports this module and needs none

    return asyncio.run(_unless_failed(_talk(base_url + answer["offer_url"], key, answer.get("iceConfig"), wav),
                                      failed))


async def _unless_failed(talk: Coroutine[Any, Any, dict[str, Any]], failed: Callable[[], bool]) -> dict[str, Any]:
    """`talk`'s account, or, when the dispatcher has failed the smoke first (a machine that died, a bot
    that raised), that: its verdict is what the command prints, and waiting on for audio adds nothing."""
    import asyncio

    calling = asyncio.ensure_future(talk)
    try:
        while not calling.done():
            await asyncio.wait({calling}, timeout=POLL_SECONDS)
            if not calling.done() and await asyncio.to_thread(failed):
                return {"failed": "the dispatcher failed the smoke session before the caller heard the bot"}
        return calling.result()
    finally:
        if not calling.done():
            calling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await calling  # its `finally` hangs up


async def _talk(offer_url: str, key: str | None, ice_config: dict[str, Any] | None, wav: Path | None
                ) -> dict[str, Any]:
    import asyncio

    from voicefleet.loadtest.audio import SPEECH_WAV, read_wav
    from voicefleet.loadtest.webrtc_caller import WebRTCCaller

    began = time.monotonic()
    caller = WebRTCCaller(offer_url, {"Authorization": f"Bearer {key}"} if key else {}, ice_config)
    try:
        await caller.connect()
        while (heard := caller.first_audio_at()) is None:
            if time.monotonic() - began > AUDIO_TIMEOUT:
                return {"failed": f"no bot audio within {AUDIO_TIMEOUT:g} s"}
            await asyncio.sleep(0.02)
        reply = await caller.turn(read_wav(wav or SPEECH_WAV), listen_seconds=LISTEN_SECONDS)
        return {"first_audio_seconds": round(heard - began, 3),
                "reply_seconds": None if reply is None else round(reply, 3)}
    except Exception as error:  # an offer refused, ICE that never came up: the caller's account of it
        return {"failed": f"{type(error).__name__}: {error}"[:300]}
    finally:
        await caller.close()  # the hang-up: the bot reports its end, and the dispatcher judges


def _failed(api: Api, name: str, session_id: str | None) -> bool:
    """Whether the dispatcher has failed this smoke session already (an unreadable answer: not yet)."""
    try:
        record = _smoke_record(api, name)
    except (Refused, Unreachable):  # the verdict's own read, after the call, says what went wrong
        return False
    return (isinstance(record, dict) and record.get("status") == "failed"
            and (session_id is None or record.get("session_id") == session_id))


def _smoke_record(api: Api, name: str) -> object:
    releases = api.call("GET", path("releases")).get("releases", [])
    return next((r.get("smoke") for r in releases if r.get("name") == name), None)


def _verdict(api: Api, name: str, session_id: str | None, wait_seconds: float) -> dict[str, Any]:
    """The release's `smoke` record once it is passed or failed (for this session), or the last one seen."""
    deadline = time.monotonic() + wait_seconds
    seen: dict[str, Any] = {"status": "unknown", "session_id": session_id}
    while True:
        record = _smoke_record(api, name)
        if isinstance(record, dict):
            seen = record
            mine = session_id is None or record.get("session_id") == session_id
            if mine and record.get("status") in VERDICTS:
                return record
        if time.monotonic() > deadline:
            return {**seen, "reason": f"no verdict within {wait_seconds:g} s (last seen: {seen.get('status')}); "
                                      "`voicefleet releases` shows it when it comes"}
        time.sleep(POLL_SECONDS)
