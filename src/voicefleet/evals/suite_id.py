"""A suite's id: a SHA-256 over its scenario files and the WAVs they play, each under its path
relative to the suite, so the same suite has the same id in any checkout and any change to what a
caller says or expects gives another. The release gate records it beside the verdict."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from voicefleet.evals.scenario import Scenario


def suite_id(root: Path, scenarios: Sequence[Scenario]) -> str:
    """`root`: the folder (or the one file) the suite was loaded from."""
    base = root if root.is_dir() else root.parent
    files = {Path(s.source) for s in scenarios}
    files |= {Path(s.source).parent / t.wav for s in scenarios for t in s.turns if t.wav is not None}
    digest = hashlib.sha256(b"voicefleet eval suite v1\n")
    named = {Path(os.path.relpath(f.resolve(), base.resolve())).as_posix(): f for f in files}
    for relative, file in sorted(named.items()):
        content, name = file.read_bytes(), relative.encode()
        digest.update(len(name).to_bytes(4, "big") + name + len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()
