"""voicefleet's example bots (examples/), importable by tests as their own folder sees them.

An example is a bot folder, not a package: its `bot.py` imports its sibling modules by their
bare names (`from parrot import Parrot`), as under Pipecat's runner. Tests reach those modules
the same way, with the folder on `sys.path`: appended, so `bot` still names voicefleet's host.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PARROT = EXAMPLES / "parrot"
ASSISTANT = EXAMPLES / "assistant"
BOOKING = EXAMPLES / "booking"


def use_example(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.append(str(folder))


def planted(root: Path, name: str, file: str, old: str, new: str) -> Path:
    """A copy of the booking line under `root/name` with one edit, the fault: its `bot.py`."""
    folder = root / name
    shutil.copytree(BOOKING, folder, ignore=shutil.ignore_patterns("scenarios", "__pycache__"))
    source = (folder / file).read_text()
    assert old in source, f"{file} no longer holds the line the {name} fault replaces"
    (folder / file).write_text(source.replace(old, new))
    return folder / "bot.py"
