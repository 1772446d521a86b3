"""What a `maxSessionSeconds` past a converged bot's realtime caps says, read from the bot project's source
(images/project_imports.py: bot.py and its own modules, parsed, never run): which vendor's service it
imports, and whether its code turns on what lifts a cap (Gemini Live's context window compression).
No Pulumi here: the plan (stacks/config/bot_session_caps.py) and a local `voicefleet config check`
(stacks/tools/session_caps.py) print the same words."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from images.project_imports import imported_modules, own_modules
from stacks.config.realtime_caps import RealtimeCap, caps_of


def over_cap(max_session_seconds: int, project: Path, entry: str = "bot.py",
             imported: Iterable[str] | None = None) -> list[RealtimeCap]:
    """The caps of the bot's realtime services that `maxSessionSeconds` exceeds and its code does not lift.
    `imported`: the modules the project imports, where its reader has them already (images/bot_project.py)."""
    modules = set(imported_modules(project, entry) if imported is None else imported)
    return [cap for cap in caps_of(modules) if max_session_seconds > cap.cap_seconds
            and not (cap.lifted_by and uses_keyword(project, cap.lifted_by, entry))]


def uses_keyword(project: Path, name: str, entry: str = "bot.py") -> bool:
    """The bot's own code names `name` as a keyword argument or an attribute (`Settings(name=…)`,
    `settings.name = …`) with a value that is not None or False: it sets what the keyword sets."""
    for _, tree in own_modules(project, entry):
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == name and not _off(node.value):
                return True
            if isinstance(node, ast.Assign) and not _off(node.value) and any(
                    isinstance(target, ast.Attribute) and target.attr == name for target in node.targets):
                return True
    return False


def _off(value: ast.expr) -> bool:
    return isinstance(value, ast.Constant) and value.value in (None, False)


def said(cap: RealtimeCap, max_session_seconds: int, location: str, *, local: bool = False) -> str:
    """The note, in a stack's keys or (`local`) a local dispatcher's settings."""
    seconds, project = ("MAX_SESSION_SECONDS", "BOT_FILE") if local else (
        "voicefleet:maxSessionSeconds", "voicefleet:botProject")
    limit = f"{cap.limit}: " if cap.limit else ""
    head = (f"{seconds} = {max_session_seconds} is longer than {cap.vendor}'s session cap of {cap.cap_seconds} s "
            f"({limit}{cap.source}); {project} = {location!r} uses {cap.service}")
    if cap.pipecat_continues:
        return f"{head}: Pipecat reconnects and resumes it by itself (docs/converged.md)"
    command = (f"MAX_SESSION_SECONDS={cap.cap_seconds}" if local
               else f"pulumi config set maxSessionSeconds {cap.cap_seconds}")
    lift = f", turn on {cap.lifted_by} in the service's settings" if cap.lifted_by else ""
    return (f"{head}, which Pipecat does not carry past the cap: the vendor ends the call there. Set "
            f"{seconds.removeprefix('voicefleet:')} to at most {cap.cap_seconds} (`{command}`){lift}, or have the "
            f"bot start a new session before the cap (docs/converged.md)")
