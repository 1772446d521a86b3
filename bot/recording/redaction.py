"""The transcript's redaction hook (`RECORDING_REDACT=module:function`, in the bot's environment):
the team's own function, imported from its project as the bot file's own imports are, called on
each turn's text before the transcript leaves the bot. It takes a `str` and returns the `str` to
keep. One that raises, or returns anything else, has the whole transcript withheld (a turn left
unredacted is the leak the hook is there to stop): the report says why, and the call goes on.
The hook runs in a thread of its own, within `REDACT_SECONDS` for the whole transcript: one that
hangs (a lock, a network call) withholds the transcript instead of holding the session's end, and
the text it returns is cut to a turn's longest (`MAX_TEXT`), as the turn it was given.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from bot.recording.turns import MAX_TEXT
from voicefleet_settings.read import setting_text

VARIABLE = "RECORDING_REDACT"
REDACT_SECONDS = 5.0  # the whole transcript's redaction: the session's end waits on it no longer
Redact = Callable[[str], Any]


class RedactionError(ValueError):
    """The hook cannot be found, or it failed on a turn; the message says which and what to do."""


def resolve(env: Mapping[str, str]) -> Redact | None:
    """The configured function, or None when none is; RedactionError naming the way forward."""
    spec = setting_text(env, VARIABLE)
    if not spec:
        return None
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise RedactionError(f"{VARIABLE}={spec!r}: write it module:function, e.g. redact:scrub "
                             "(a function in redact.py beside your bot file)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RedactionError(f"{VARIABLE}={spec!r}: module {module_name} cannot be imported "
                             f"({type(exc).__name__}: {exc}): put it in your project beside the bot file") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise RedactionError(f"{VARIABLE}={spec!r}: {module_name} has no function {name}")
    return function  # type: ignore[no-any-return]


def redacted(lines: list[dict[str, Any]], redact: Redact) -> list[dict[str, Any]]:
    """Each line with its text redacted; RedactionError (the whole transcript withheld) when the hook fails."""
    kept = []
    for number, line in enumerate(lines, 1):
        text = line.get("text")
        if not isinstance(text, str):
            kept.append(line)
            continue
        try:
            out = redact(text)
        except Exception as exc:
            raise RedactionError(f"{VARIABLE} raised {type(exc).__name__} on turn {number}: the transcript was "
                                 "not kept") from None
        if not isinstance(out, str):
            raise RedactionError(f"{VARIABLE} returned {type(out).__name__}, not str, on turn {number}: the "
                                 "transcript was not kept") from None
        kept.append({**line, "text": out[:MAX_TEXT]})  # a turn's longest, whatever the hook made of it
    return kept


async def redacted_within(lines: list[dict[str, Any]], redact: Redact,
                          seconds: float | None = None) -> list[dict[str, Any]]:
    """`redacted`, in a daemon thread (a hook that never returns cannot hold the bot's exit either),
    waited on at most `seconds` (default `REDACT_SECONDS`); RedactionError when it took longer."""
    seconds = REDACT_SECONDS if seconds is None else seconds
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[dict[str, Any]]] = loop.create_future()

    def settle(future: asyncio.Future[list[dict[str, Any]]], result: Any, error: BaseException | None) -> None:
        if future.done():
            return  # given up on already
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, error = redacted(lines, redact), None
        except BaseException as exc:  # handed to the waiting task, whatever it is
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, done, result, error)
        except RuntimeError:  # the loop closed meanwhile: nobody waits
            pass

    threading.Thread(target=work, name="recording-redact", daemon=True).start()
    try:
        return await asyncio.wait_for(done, seconds)
    except TimeoutError:
        raise RedactionError(f"{VARIABLE} did not return within {seconds:g} s: the transcript was not kept") from None
