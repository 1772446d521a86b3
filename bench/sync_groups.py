"""What a fresh clone's first `uv sync --all-groups` installs, group by group, read from uv.lock (never run).

For the project's own dependencies and each dependency group alone (packages two groups share count in
both): the packages it adds beyond the project's own dependencies, their wheels' download size for
this interpreter on Linux x86_64 (uv.lock records each wheel's size), and the files each installs where
this environment has it (its RECORD): with a warm uv cache an install links file by file, and bytecode
compiles each .py. Then the largest packages of all, by bytes and by files.

    uv run python -m bench.sync_groups [--top 15]

Markers are not evaluated: a package whose wheels are all for another platform counts 0 bytes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "voicefleet"
_TAGS = re.compile(r"-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$")


def _fits(filename: str) -> bool:
    """A wheel this interpreter on Linux x86_64 installs."""
    found = _TAGS.search(filename)
    if found is None:
        return False
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    pythons = found["python"].split(".")
    platforms = found["platform"].split(".")
    return (any(tag in (here, "py3", "py2", "cp3") or (found["abi"] == "abi3" and tag.startswith("cp3"))
                for tag in pythons)
            and any(tag == "any" or ("linux" in tag and "x86_64" in tag) for tag in platforms))


def wheel_sizes(lock: dict[str, Any]) -> dict[str, int]:
    """Package name -> bytes of the first wheel that fits (0 when none does)."""
    sizes = {}
    for package in lock["package"]:
        fitting = [wheel for wheel in package.get("wheels", []) if _fits(wheel["url"].rsplit("/", 1)[-1])]
        sizes[package["name"]] = int(fitting[0].get("size", 0)) if fitting else 0
    return sizes


def installed_files() -> dict[str, int]:
    """Package name (uv.lock's spelling) -> files its installed distribution lists, in this environment."""
    return {re.sub(r"[-_.]+", "-", str(dist.metadata["Name"])).lower(): len(dist.files or [])
            for dist in importlib.metadata.distributions()}


def closure(lock: dict[str, Any], roots: list[str]) -> set[str]:
    """Every package `roots` pull in (extras included)."""
    by_name = {package["name"]: package for package in lock["package"]}
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        package = by_name[name]
        pending += [dep["name"] for dep in package.get("dependencies", [])]
        for deps in package.get("optional-dependencies", {}).values():
            pending += [dep["name"] for dep in deps]
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    sizes = wheel_sizes(lock)
    (project,) = [p for p in lock["package"] if p["name"] == PROJECT]
    groups = {"(the project's dependencies)": [dep["name"] for dep in project.get("dependencies", [])]}
    groups |= {name: [dep["name"] for dep in deps] for name, deps in project.get("dev-dependencies", {}).items()}
    base = closure(lock, groups.pop("(the project's dependencies)"))
    installed = set(base)
    files = installed_files()
    print(f"{'group':<14} {'packages':>9} {'MB':>7} {'files':>7}  largest (MB)")
    for group, roots in [("(project)", []), *groups.items()]:
        added = base if group == "(project)" else closure(lock, roots) - base
        installed |= added
        largest = sorted(added, key=lambda name: -sizes.get(name, 0))[:4]
        print(f"{group:<14} {len(added):>9} {sum(sizes.get(n, 0) for n in added) / 1e6:>7.1f} "
              f"{sum(files.get(n, 0) for n in added):>7}  "
              + ", ".join(f"{name} {sizes.get(name, 0) / 1e6:.0f}" for name in largest))
    print(f"{'all groups':<14} {len(installed):>9} {sum(sizes.get(n, 0) for n in installed) / 1e6:>7.1f} "
          f"{sum(files.get(n, 0) for n in installed):>7}")
    print(f"\nlargest {args.top} wheels (MB, files installed):")
    for name in sorted(installed, key=lambda name: -sizes.get(name, 0))[:args.top]:
        print(f"  {name:<40} {sizes.get(name, 0) / 1e6:7.1f} {files.get(name, 0):7}")
    print(f"\nmost files ({args.top}):")
    for name in sorted(installed, key=lambda name: -files.get(name, 0))[:args.top]:
        print(f"  {name:<40} {files.get(name, 0):7}")


if __name__ == "__main__":
    main()
