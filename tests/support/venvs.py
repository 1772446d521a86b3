"""A Python environment like a project's own: this test environment's packages minus some.

A bot project installs only the extras its transports need (a Twilio project locks no aiortc).
`venv_without` makes such an interpreter from what is already installed, offline: a fresh venv of
the same base Python whose site-packages links every installed distribution except the ones named,
so `import aiortc` there fails exactly as it does in that project's `.venv`.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def venv_without(where: Path, *distributions: str) -> Path:
    """The new environment's `python`; `distributions` by their top-level module name (e.g. aiortc)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    source = Path(sysconfig.get_paths()["purelib"])
    target = next((where / "lib").glob("python3*/site-packages"))
    left_out = tuple(name.lower() for name in distributions)
    for entry in source.iterdir():
        stem = entry.name.lower().split("-", 1)[0].removesuffix(".py")
        if stem in left_out or entry.name.lower().startswith(tuple(f"{name}-" for name in left_out)):
            continue
        (target / entry.name).symlink_to(entry)
    python = where / "bin" / "python"
    for name in left_out:
        probe = subprocess.run([str(python), "-c", f"import {name}"], capture_output=True, timeout=60, check=False)
        assert probe.returncode != 0, f"{name} is still importable from {python}"
    return python
