"""A module's docstring says what the module is for and the one or two facts a reader needs before
its code; the design reasoning, measurements and history go to the docs page it names. This holds
every module's docstring to less than a screen."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("voicefleet_settings", "botchannel", "bot", "dispatcher", "examples", "images", "stacks", "policy", "infra",
            "src/voicefleet")
MAX_DOCSTRING_LINES = 24


def docstring_lines(source: str) -> int:
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    return 0 if docstring is None else docstring.count("\n") + 1


def test_every_module_docstring_fits_on_a_screen() -> None:
    long = {str(path.relative_to(ROOT)): lines
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            if not {"__pycache__", ".venv"} & set(path.parts)
            and (lines := docstring_lines(path.read_text())) > MAX_DOCSTRING_LINES}
    assert long == {}, "move the reasoning to the docs page the docstring names"


def test_the_check_counts_a_long_docstring() -> None:
    assert docstring_lines('"""one\n\ntwo\nthree"""\nx = 1\n') == 4
    assert docstring_lines("x = 1\n") == 0
