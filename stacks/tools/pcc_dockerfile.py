"""What each line of a Pipecat Cloud project's Dockerfile becomes in voicefleet's bot image build.

voicefleet builds the bot image from the project folder (voicefleet:botProject) and does not run the project's
Dockerfile: `python -m stacks.import_pcc` prints a note per line that did something the build does not do.
"""

from __future__ import annotations

import re
from pathlib import Path


def dockerfile_notes(dockerfile: Path) -> list[str]:
    """What each line of a Pipecat Cloud Dockerfile becomes in voicefleet's build (which does not run it)."""
    if not dockerfile.is_file():
        return []
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    notes = []
    for line in (raw.strip() for raw in text.splitlines()):
        word = line.split(" ", 1)[0].upper() if line and not line.startswith("#") else ""
        rest = line[len(word):].strip()
        if not word or word in ("WORKDIR", "ARG", "LABEL", "EXPOSE", "CMD", "ENTRYPOINT", "HEALTHCHECK"):
            continue
        if word == "FROM":
            if "pipecat-base" not in rest:
                notes.append(f"`{line}`: voicefleet builds on its own base (python slim + your locked "
                             "dependencies); check what this base added")
        elif word in ("COPY", "ADD"):
            continue  # the whole project folder is copied (minus .venv, .git, .env)
        elif word == "RUN" and re.search(r"\buv sync\b|pip install (-r|--requirement)", rest):
            continue  # voicefleet installs the lock / requirements.txt itself
        elif word == "RUN" and re.search(r"\bapt(-get)?\b", rest):
            notes.append(f"`{line}`: system packages are not installed by voicefleet's build; the runtime is "
                         "python slim. Prefer a wheel that bundles the library, or add the package to "
                         "images/bot.Dockerfile's runtime stage")
        elif word == "RUN":
            notes.append(f"`{line}`: move it to bake.py at the project's root, which the build runs once with "
                         "your dependencies (write models under $BOT_MODELS_DIR)")
        elif word == "ENV" and rest.startswith("UV_"):
            continue  # uv's build settings; voicefleet's build sets its own
        elif word == "ENV":
            notes.append(f"`{line}`: set it in bot.py, or as a botSecrets entry if it is a secret")
        elif word == "USER":
            continue  # the image runs as uid 10001
        else:
            notes.append(f"`{line}`: no counterpart in voicefleet's build")
    return notes
