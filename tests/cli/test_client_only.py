"""The command is a client of the HTTP API and nothing more (docs/cli.md): it imports none of the
repository's other packages, so it cannot reach into a dispatcher's internals, and what it can do
any client can do with the same key."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY_PACKAGES = {"voicefleet_settings", "botchannel", "bot", "dispatcher", "examples", "images", "stacks",
                       "policy", "infra", "tests"}


def repository_imports(package: Path) -> list[str]:
    """`file: imported` for each import of another of the repository's packages, at any depth."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            found += [f"{path.relative_to(package).as_posix()}: {name}" for name in names
                      if name.split(".")[0] in REPOSITORY_PACKAGES]
    return found


def test_the_command_imports_none_of_the_dispatchers_code() -> None:
    assert (ROOT / "src" / "voicefleet" / "main.py").is_file()
    assert repository_imports(ROOT / "src" / "voicefleet") == []


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("import json\n\ndef f():\n    from dispatcher.releases import traffic\n")
    assert repository_imports(tmp_path) == ["mod.py: dispatcher.releases"]
