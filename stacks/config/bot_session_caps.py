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

from stacks.config.bot import PULUMI_PROJECT_ROOT
from stacks.config.model import Settings
from stacks.config.reader import DEFAULTS, NAMESPACE
from stacks.config.realtime_cap_notes import over_cap, said


def check(settings: Settings) -> None:
    """The plan: a warning for each cap the call would outlast, a note where Pipecat resumes past it."""
    found = settings.bot_project
    if found is None:
        return
    for cap in over_cap(settings.max_session_seconds, found.project.path, imported=found.project.imports):
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
