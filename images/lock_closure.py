"""What a bot project's uv.lock installs, and why the project needs a locked package: the closure of
the lock's dependency graph (uv.lock's [[package]] tables: dependencies, optional-dependencies by
extra), read without resolving anything. The size prediction (images/size_prediction.py) counts what
`uv sync --no-dev` installs; the plan (images/bot_project.py) never leaves out what the bot's own
imports need.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from images.project_imports import ModuleImport, importing


def locked_packages(lock: Path) -> tuple[Mapping[str, Any], ...]:
    """The lock's [[package]] tables (read only: one parse is shared by every reader). A bot's lock is
    read several times by one plan (its exclude-packages, each image's size); parsed once per content,
    so an edited lock is parsed again, whatever its size or time. Raises OSError,
    tomllib.TOMLDecodeError or UnicodeDecodeError as reading it would."""
    return packages_of(lock.read_bytes())


@lru_cache(maxsize=8)
def packages_of(content: bytes) -> tuple[Mapping[str, Any], ...]:
    """The [[package]] tables of a lock's content (bytes as read: the key of the shared parse)."""
    packages = tomllib.loads(content.decode("utf-8")).get("package", [])
    return tuple(p for p in packages if isinstance(p, dict)) if isinstance(packages, list) else ()


def _dependencies(entries: object) -> list[tuple[str, tuple[str, ...]]]:
    """A lock entry's `dependencies`-shaped list as (name, extras asked for)."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            extras = entry.get("extra", [])
            found.append((canonicalize_name(entry["name"]),
                          tuple(str(e) for e in extras) if isinstance(extras, list) else ()))
    return found


def _is_project(source: object) -> bool:
    """The lock's own project (`source = { virtual = "." }` or `{ editable = "." }`)."""
    return isinstance(source, dict) and ("virtual" in source or "editable" in source)


def installed_names(packages: Sequence[Mapping[str, object]]) -> set[str] | None:
    """The packages `uv sync --no-dev` installs from this lock (images/install_project.sh): the
    project's own dependencies and, through them, theirs with the extras each asks for; not its
    dev groups, nor extras nobody asks for. Markers are not evaluated (a package for another
    platform has no wheel that fits and counts nothing anyway). None when the lock names no project
    of its own (every package then counts)."""
    roots = [p for p in packages if _is_project(p.get("source"))]
    if not roots:
        return None
    return _closure(packages, [dep for root in roots for dep in _dependencies(root.get("dependencies"))])


def _closure(packages: Sequence[Mapping[str, object]], wanted: list[tuple[str, tuple[str, ...]]],
             stop: frozenset[str] = frozenset()) -> set[str]:
    """The locked packages `wanted` (name, extras) brings, itself included, not going past `stop`."""
    by_name: dict[str, list[Mapping[str, object]]] = {}
    for package in packages:
        by_name.setdefault(canonicalize_name(str(package.get("name", ""))), []).append(package)
    seen: set[tuple[str, str]] = set()
    while wanted:
        name, extras = wanted.pop()
        for key in ("", *extras):
            if (name, key) in seen:
                continue
            seen.add((name, key))
            for package in by_name.get(name, []) if name not in stop else []:
                optional = package.get("optional-dependencies")
                entries = package.get("dependencies") if not key else (
                    optional.get(key) if isinstance(optional, dict) else None)
                wanted += _dependencies(entries)
    return {name for name, _ in seen}


# Pipecat's own dependencies are what exclude-packages trims (the optional paths its bot never takes):
# a package the bot imports does not need them through Pipecat.
TRIMMED_THROUGH = frozenset({"pipecat-ai"})


@dataclass(frozen=True)
class Need:
    """Why a bot project needs a locked package: its import (`found`) of a module of that package or,
    `through` another, of a package that depends on it."""

    found: ModuleImport
    through: str | None = None


def needing(lock: Path, distribution: str, imports: Mapping[str, ModuleImport]) -> Need | None:
    """The project's import that needs `distribution`: of a module it provides, or of a package that
    depends on it in the project's uv.lock (not through Pipecat: TRIMMED_THROUGH). The project's
    .venv, beside the lock, tells which modules a package provides (images/project_imports.py)."""
    name = canonicalize_name(distribution)
    if direct := importing(name, imports, lock.parent):
        return Need(direct)
    try:
        packages = locked_packages(lock)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    for package in packages:
        other = canonicalize_name(str(package.get("name", "")))
        if other == name or other in TRIMMED_THROUGH or _is_project(package.get("source")):
            continue
        if name in _closure(packages, [(other, ())], stop=TRIMMED_THROUGH) and (
                found := importing(other, imports, lock.parent)):
            return Need(found, other)
    return None
