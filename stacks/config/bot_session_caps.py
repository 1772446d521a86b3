"""`maxSessionSeconds` beside the session cap of the speech-to-speech service the bot uses.

A converged bot's call lasts as long as its vendor's session: OpenAI Realtime ends one at 60 minutes
with no warning, and Pipecat 1.14 does not reconnect (stacks/config/realtime_caps.py). A stack that
lets sessions run longer promises callers what the vendor will not keep, so the plan and `voicefleet
config check --stack` name it. Which service the bot uses is read from its imports
(images/project_imports.py: bot.py and its own modules, parsed, never run). Vendors Pipecat carries
past their cap (Gemini Live's resumption, Nova Sonic's continuation) are noted, never warned about.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi

from images.project_imports import imported_modules
from stacks.config.bot import PULUMI_PROJECT_ROOT
from stacks.config.model import Settings
from stacks.config.reader import DEFAULTS, NAMESPACE
from stacks.config.realtime_caps import RealtimeCap, caps_of


def over_cap(max_session_seconds: int, project: Path) -> list[RealtimeCap]:
    """The caps of the bot's realtime services that `maxSessionSeconds` exceeds."""
    modules = set(imported_modules(project))
    return [cap for cap in caps_of(modules) if max_session_seconds > cap.cap_seconds]


def said(cap: RealtimeCap, max_session_seconds: int, location: str) -> str:
    head = (f"voicefleet:maxSessionSeconds = {max_session_seconds} is longer than {cap.vendor}'s session cap of "
            f"{cap.cap_seconds} s ({cap.source}); voicefleet:botProject = {location!r} uses {cap.service}")
    if cap.pipecat_continues:
        return f"{head}: Pipecat reconnects and resumes it by itself (docs/converged.md)"
    return (f"{head}, which Pipecat does not carry past the cap: the vendor ends the call there. Set "
            f"maxSessionSeconds to at most {cap.cap_seconds} (`pulumi config set maxSessionSeconds "
            f"{cap.cap_seconds}`), or have the bot start a new session before the cap (docs/converged.md)")


def check(settings: Settings) -> None:
    """The plan: a warning for each cap the call would outlast, a note where Pipecat resumes past it."""
    found = settings.bot_project
    if found is None:
        return
    for cap in over_cap(settings.max_session_seconds, found.project.path):
        message = said(cap, settings.max_session_seconds, found.location)
        (pulumi.log.info if cap.pipecat_continues else pulumi.log.warn)(message)


def stack_notes(config: Mapping[str, str]) -> list[str]:
    """`voicefleet config check --stack`: the same warnings, from the stack file's keys (full names, as text)."""
    seconds_text = config.get(f"{NAMESPACE}:maxSessionSeconds", str(DEFAULTS["maxSessionSeconds"]))
    location = config.get(f"{NAMESPACE}:botProject", str(DEFAULTS["botProject"]))
    path = Path(location) if Path(location).is_absolute() else PULUMI_PROJECT_ROOT / location
    if not seconds_text.isdigit() or not (path / "bot.py").is_file():
        return []  # the program's own check names a bad value or a missing project
    seconds = int(seconds_text)
    return [said(cap, seconds, location) for cap in over_cap(seconds, path) if not cap.pipecat_continues]
