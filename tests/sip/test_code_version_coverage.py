"""Hostile review of the edge's `version` (sipedge/code_version.py): documented as "two edges show the same
`version` exactly when they run the same code". The edge runs code outside sipedge/ too (the outbound call
policy it enforces, voicefleet_settings/call_policy.py; botchannel/), shipped in the same image."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from sipedge.code_version import CODE_PACKAGES

ROOT = Path(__file__).parents[2]


def _version(tree: Path) -> str:
    shown = subprocess.run([sys.executable, "-c", "from sipedge.code_version import code_version; "
                            "print(code_version())"], cwd=tree, env={"PYTHONPATH": str(tree)},
                           capture_output=True, text=True, timeout=120, check=True)
    return shown.stdout.strip()


def test_a_change_to_the_call_policy_the_edge_runs_changes_its_version(tmp_path: Path) -> None:
    for package in ("sipedge", "voicefleet_settings", "botchannel"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = _version(tmp_path)
    policy = tmp_path / "voicefleet_settings" / "call_policy.py"
    policy.write_text(policy.read_text() + "\nALLOW_EVERY_CALLER = True  # another policy than the other edge's\n")
    assert before.startswith("sipedge-") and _version(tmp_path) != before


def test_every_package_of_this_repo_the_edge_imports_is_in_its_version() -> None:
    first_party = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    imported, unread = set(), ["sipedge"]
    while unread:
        package = unread.pop()
        imported.add(package)
        for source in (ROOT / package).glob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                unread += [top for name in names if (top := name.split(".")[0]) in first_party - imported]
    assert imported == set(CODE_PACKAGES), imported
