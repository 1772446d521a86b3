"""What Pulumi's uv toolchain installs before it runs the program, and whether the program can import.

A model of pulumi/pulumi `sdk/python/toolchain/uv.go` and the engine's `getPwdMain`
(`pkg/engine/project.go`), read at their 2026-08 sources:
- the program folder is Pulumi.yaml's `main` when it names a folder, else the project folder;
- the virtualenv sits next to the nearest `uv.lock` above the program folder (else the nearest
  `pyproject.toml`, else the program folder), as `.venv`;
- before every run (`preview`, `up`, `destroy`) Pulumi runs `uv sync --inexact` in the program
  folder, and `pulumi install` runs `uv sync`: uv installs the nearest project's dependencies plus
  its *default* dependency groups (`tool.uv.default-groups`, uv's default `["dev"]`), as locked;
- the program then runs with that venv's python, its working directory the program folder, and
  so do the provider plugins (docker-build resolves the build context from there).
The preflight checks that this install holds every Pulumi package the program imports; the
tests also run uv itself the same way in a fresh copy (tests/infra/tools/preflight/test_toolchain.py).
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from images.lock_closure import packages_of
from stacks.config.project_file import project_document

# The program's Python sources, relative to the repository root.
PROGRAM_SOURCES = ("stacks", "images/component.py")
UV_DEFAULT_GROUPS = ("dev",)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def searchup(start: Path, name: str) -> Path | None:
    """The nearest folder at or above `start` holding `name` (uv.go's searchup)."""
    for folder in (start, *start.parents):
        if (folder / name).exists():
            return folder
    return None


@dataclass(frozen=True)
class Toolchain:
    program_dir: Path  # where `uv sync` runs and the program (and the providers) run
    project_dir: Path | None  # the uv project uv finds from there
    venv: Path
    installed: frozenset[str]  # normalised distribution names `uv sync --inexact` installs


def program_dir(project_root: Path) -> Path:
    """getPwdMain: `main` naming a folder is where the program runs; a file runs in its folder."""
    project = project_document(project_root / "Pulumi.yaml") or {}
    main = str(project.get("main") or "")
    if not main:
        return project_root
    target = (project_root / main).resolve()
    return target if target.is_dir() else target.parent


def _uv_project(start: Path) -> Path | None:
    """uv's project discovery: the nearest pyproject.toml with a [project] table."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.exists() and "project" in tomllib.loads(candidate.read_text()):
            return folder
    return None


def _closure(lock: dict[str, Any], roots: Iterable[dict[str, Any]]) -> set[str]:
    packages = {_normal(p["name"]): p for p in lock.get("package", [])}
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        name = _normal(requirement["name"])
        package = packages.get(name)
        extras = tuple(requirement.get("extra", ()))
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        if package is None:
            continue
        pending.extend(package.get("dependencies", []))
        for extra in extras:
            pending.extend(package.get("optional-dependencies", {}).get(extra, []))
    return {key.split("[", 1)[0] for key in seen}


def synced(project_dir: Path) -> frozenset[str]:
    """What `uv sync` (default groups, as locked) installs for the project in `project_dir`."""
    pyproject = tomllib.loads((project_dir / "pyproject.toml").read_text())
    lock_path = project_dir / "uv.lock"
    if not lock_path.exists():
        return frozenset()
    lock = {"package": packages_of(lock_path.read_bytes())}  # one parse per content, shared with the image plan
    name = _normal(pyproject["project"]["name"])
    own = next((p for p in lock["package"] if _normal(p["name"]) == name), None)
    if own is None:
        return frozenset()
    groups = pyproject.get("tool", {}).get("uv", {}).get("default-groups", list(UV_DEFAULT_GROUPS))
    roots = list(own.get("dependencies", []))
    for group in groups:
        roots.extend(own.get("dev-dependencies", {}).get(group, []))
    return frozenset(_closure(lock, roots) - {name})


def resolve(project_root: Path) -> Toolchain:
    folder = program_dir(project_root)
    lock_dir = searchup(folder, "uv.lock")
    venv_dir = lock_dir or searchup(folder, "pyproject.toml") or folder
    project = _uv_project(folder)
    return Toolchain(program_dir=folder, project_dir=project, venv=venv_dir / ".venv",
                     installed=synced(project) if project is not None else frozenset())


def imported_pulumi_packages(repository: Path) -> set[str]:
    """Distribution names of the Pulumi SDKs the program's sources import (pulumi_aws -> pulumi-aws)."""
    found: set[str] = set()
    entry = program_dir(repository) / "__main__.py"
    files = [entry] if entry.exists() else []
    for source in PROGRAM_SOURCES:
        path = repository / source
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    for file in files:
        found |= _pulumi_imports(file.read_bytes())
    return found


@lru_cache(maxsize=1024)
def _pulumi_imports(source: bytes) -> frozenset[str]:
    """One file's: parsing the program's 300 files took a second of CPU in every plan; an edited file is
    parsed again, as its content names the parse."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                 else [])
        found |= {_normal(n.split(".", 1)[0]) for n in names if n.split(".", 1)[0].startswith("pulumi")}
    return frozenset(found)


def violations(repository: Path) -> list[str]:
    chain = resolve(repository)
    where = chain.program_dir.relative_to(repository).as_posix() if chain.program_dir != repository else "."
    if chain.project_dir is None:
        return [f"Pulumi.yaml: no uv project (pyproject.toml with [project]) at or above the program folder {where}"]
    missing = sorted(imported_pulumi_packages(repository) - chain.installed)
    if not missing:
        return []
    return [f"Pulumi.yaml: Pulumi's `uv sync --inexact` in {where} installs {chain.project_dir.name or '.'}'s "
            f"dependencies and default groups, which lack {', '.join(missing)}: the program would fail with "
            "ModuleNotFoundError"]


def build_context_violations(repository: Path, registrations: Iterable[Any]) -> list[str]:
    """docker-build resolves `context.location` and `dockerfile.location` from the program folder."""
    folder = program_dir(repository)
    found: list[str] = []
    for reg in registrations:
        if reg.type != "docker-build:index:Image":
            continue
        context = (reg.inputs.get("context") or {}).get("location", "")
        dockerfile = (reg.inputs.get("dockerfile") or {}).get("location", "")
        if not (folder / context / "pyproject.toml").exists():
            found.append(f"{reg.type} {reg.name}: build context {context!r} (from {folder.name}/) is not the repo")
        if not (folder / dockerfile).is_file():
            found.append(f"{reg.type} {reg.name}: Dockerfile {dockerfile!r} (from {folder.name}/) does not exist")
    return found
