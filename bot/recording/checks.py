"""`python -m bot --check`'s look at the recording's own settings: the consent announcement
(RECORDING_ANNOUNCEMENT) is audio that plays, and the redaction hook (RECORDING_REDACT) is found in
the project. Either wrong is one line naming the way forward, before any call finds it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.recording.announcement import VARIABLE, announcement_problem
from bot.recording.redaction import RedactionError, resolve
from voicefleet_settings.read import setting_text


def recording_problem(env: Mapping[str, str], project: Path) -> str | None:
    if setting_text(env, VARIABLE) and (problem := announcement_problem(env, project)) is not None:
        return problem
    try:
        resolve(env)
    except RedactionError as exc:
        return str(exc)
    return None
