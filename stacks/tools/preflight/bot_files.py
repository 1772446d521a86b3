"""A note for the operator: files the bot image takes that its rebuild digest does not count.

The bot images' `voicefleet.bot-project.digest` label counts, in a git checkout, only the files git
tracks (images/project_files.py): an editor's backup or a cache must not make two checkouts of one
commit rebuild. The build still takes every file. So a new module that bot.py imports, not yet
`git add`ed, changes nothing a preview compares: `pulumi up` keeps the old bot, and the first
session fails at the import. The plan names such files, as a note rather than a violation, since a
scratch file left in the folder is harmless; each is either added to git or left out of the image by
the project's `.dockerignore`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from images import project_files
from images.component import PROGRAM_FOLDER
from stacks.tools.mocks import Registration, unwrap

IMAGE = "docker-build:index:Image"
NAMED_CONTEXT = "bot-project"  # images/bot.Dockerfile's named context (images/component.py)
SHOWN = 5  # names printed before "and N more"


def project_locations(registrations: Iterable[Registration]) -> list[str]:
    """The bot-project contexts the stack builds (relative to the program folder, as docker-build reads them)."""
    found = set()
    for reg in registrations:
        if reg.type != IMAGE:
            continue
        named = (unwrap(reg.inputs).get("context") or {}).get("named") or {}
        location = (named.get(NAMED_CONTEXT) or {}).get("location")
        if location:
            found.add(str(location))
    return sorted(found)


def notes(registrations: Iterable[Registration], program_folder: Path = PROGRAM_FOLDER) -> list[str]:
    found = []
    for location in project_locations(registrations):
        left_out = project_files.untracked(program_folder / location)
        if not left_out:
            continue
        shown = ", ".join(left_out[:SHOWN]) + (f" and {len(left_out) - SHOWN} more" if len(left_out) > SHOWN else "")
        found.append(f"bot project {location}: the image takes {len(left_out)} file(s) git does not track ({shown}); "
                     "the rebuild digest counts tracked files only, so a change to them deploys the old bot. "
                     "`git add` what the bot uses; leave the rest out with the project's .dockerignore")
    return found
