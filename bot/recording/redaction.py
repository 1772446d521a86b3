"""The transcript's redaction hook (`RECORDING_REDACT=module:function`, in the bot's environment):
the team's own function, imported from its project as the bot file's own imports are, called on
each turn's text before the transcript leaves the bot. It takes a `str` and returns the `str` to
keep. One that raises, or returns anything else, has the whole transcript withheld (a turn left
unredacted is the leak the hook is there to stop): the report says why, and the call goes on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

VARIABLE = "RECORDING_REDACT"
Redact = Callable[[str], Any]


class RedactionError(ValueError):
    """The hook cannot be found, or it failed on a turn; the message says which and what to do."""


def resolve(env: Mapping[str, str]) -> Redact | None:
    """The configured function, or None when none is; RedactionError naming the way forward."""
    spec = env.get(VARIABLE, "").strip()
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
        kept.append({**line, "text": out})
    return kept
