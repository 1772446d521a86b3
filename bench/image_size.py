"""Installed size of the bot and dispatcher images' Python closures, and the bot's offline start-up time.

    uv run python bench/image_size.py [--runs 7] [--json bench/out/image_size.json]

There is no Docker engine here, so the closures are rebuilt the way the Dockerfiles build them: each
Dockerfile's own `uv sync` command, bytecode compiled, into a fresh venv, then the build stage's own
edits of that venv (the dispatcher's botocore pruning) (tests/images/closure.py). Budgets: images/budgets.py.
Sizes are apparent sizes (what a layer tarball stores before compression), in MB = 10^6 bytes, of
site-packages, attributed to distributions through their RECORD files plus the bytecode uv compiled
for them. The bot closure is also built without the Dockerfile's `--no-install-package` exclusions to
show what each exclusion saves. Start-up time is the entrypoint's `--check` (Daily transport, parrot
pipeline), in a network namespace with no route when `unshare -n` works, median of --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: tests.images helpers

from images.budgets import CLOSURE_BUDGET_MB, MB, installed_mb  # noqa: E402
from tests.images.closure import (  # noqa: E402
    BOT_DOCKERFILE,
    DISPATCHER_DOCKERFILE,
    Closure,
    build_closure,
    entrypoint_command,
    excluded_packages,
    runtime_env,
    runtime_root,
)

ROOM_ARGS = ["--transport", "daily", "--room-url", "https://voicefleet.daily.co/bench"]


@dataclass(frozen=True)
class Sizes:
    total_mb: float  # site-packages
    bytecode_mb: float  # the .pyc files uv compiled (part of total)
    by_package_mb: dict[str, float]  # distribution name → MB, largest first


def _files_size(paths: set[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())


def measure(site_packages: Path) -> Sizes:
    every = {p for p in site_packages.rglob("*") if p.is_file()}
    owned: dict[str, set[Path]] = {}
    for dist_info in site_packages.glob("*.dist-info"):
        name = dist_info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
        files: set[Path] = set()
        record = dist_info / "RECORD"
        for line in record.read_text().splitlines() if record.exists() else []:
            path = (site_packages / line.split(",")[0]).resolve()
            files.add(path)
            if path.suffix == ".py":  # the bytecode uv compiled next to it
                files.update(path.parent.glob(f"__pycache__/{path.stem}.*.pyc"))
        files.update(dist_info.rglob("*"))
        owned[name] = files & every
    by_package = {name: _files_size(files) / MB for name, files in owned.items()}
    attributed = set().union(*owned.values()) if owned else set()
    by_package["(unattributed)"] = _files_size(every - attributed) / MB
    return Sizes(
        total_mb=installed_mb(site_packages),
        bytecode_mb=_files_size({p for p in every if p.suffix == ".pyc"}) / MB,
        by_package_mb=dict(sorted(by_package.items(), key=lambda item: -item[1])),
    )


def _unshare_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def check_times(closure: Closure, workdir: Path, runs: int) -> tuple[list[float], bool]:
    """Wall time of the bot image's entrypoint with `--check`, each run a fresh process."""
    command = [*entrypoint_command(BOT_DOCKERFILE), "--check", *ROOM_ARGS]
    app = runtime_root(BOT_DOCKERFILE, workdir / "root")
    env = runtime_env(BOT_DOCKERFILE, closure, workdir, root=app.parent)
    prefix = _unshare_prefix()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*prefix, *command], cwd=app, env=env, check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - started)
    return times, bool(prefix)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    """First column left-aligned, the others right-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: tuple[str, ...]) -> str:
        padded = [cell.rjust(w) for cell, w in zip(cells, widths, strict=True)]
        padded[0] = cells[0].ljust(widths[0])
        return "  ".join(padded).rstrip()

    return "\n".join([line(rows[0]), line(tuple("-" * w for w in widths)), *map(line, rows[1:])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="--check runs for the start-up median")
    parser.add_argument("--top", type=int, default=12, help="packages listed per closure")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="image-size-") as tmp:
        root = Path(tmp)
        bot = build_closure(BOT_DOCKERFILE, root / "bot")
        dispatcher = build_closure(DISPATCHER_DOCKERFILE, root / "dispatcher")
        unpruned = build_closure(BOT_DOCKERFILE, root / "bot-unpruned", exclusions=False)
        sizes = {name: measure(c.site_packages) for name, c in [("bot", bot), ("dispatcher", dispatcher)]}
        full = measure(unpruned.site_packages)
        (root / "work").mkdir()
        times, offline = check_times(bot, root / "work", args.runs)
        # What UV_COMPILE_BYTECODE buys: the runtime venv is read-only for the bot user and
        # PYTHONDONTWRITEBYTECODE is set, so without it every cold start compiles every import.
        no_pyc = build_closure(BOT_DOCKERFILE, root / "bot-no-pyc", env_overrides={"UV_COMPILE_BYTECODE": "0"})
        (root / "work-no-pyc").mkdir()
        times_no_pyc, _ = check_times(no_pyc, root / "work-no-pyc", args.runs)

    print("Image closures (site-packages, MB = 10^6 B, bytecode included)\n")
    rows = [("closure", "MB", "of which .pyc", "budget", "verdict")]
    for name, size in sizes.items():
        budget = CLOSURE_BUDGET_MB[name]
        verdict = "within" if size.total_mb <= budget else "OVER"
        rows.append((name, f"{size.total_mb:.1f}", f"{size.bytecode_mb:.1f}", f"{budget:.0f}", verdict))
    rows.append(("bot without exclusions", f"{full.total_mb:.1f}", f"{full.bytecode_mb:.1f}", "", ""))
    print(_table(rows))
    for name, size in sizes.items():
        print(f"\nHeaviest packages in the {name} closure\n")
        top = list(size.by_package_mb.items())[: args.top]
        print(_table([("package", "MB"), *((pkg, f"{mb:.1f}") for pkg, mb in top)]))
    excluded = excluded_packages(bot.argv)
    saved = sorted(((pkg, full.by_package_mb.get(pkg, 0.0)) for pkg in excluded), key=lambda item: -item[1])
    print("\nLeft out of the bot image by the Dockerfile (size in the unpruned closure)\n")
    print(
        _table(
            [
                ("package", "MB"),
                *((pkg, f"{mb:.1f}") for pkg, mb in saved),
                ("total", f"{sum(mb for _, mb in saved):.1f}"),
            ]
        )
    )
    where = "offline (unshare -n)" if offline else "with network (unshare -n unavailable)"
    print(
        f"\nbot --check start-up, {where}: median {statistics.median(times):.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)}; {os.cpu_count()} CPUs)"
    )
    print(
        f"the same without precompiled bytecode: median {statistics.median(times_no_pyc):.2f} s "
        f"(min {min(times_no_pyc):.2f}, max {max(times_no_pyc):.2f}, n={len(times_no_pyc)})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "closures": {name: asdict(size) for name, size in sizes.items()},
            "bot_without_exclusions_mb": full.total_mb,
            "excluded_mb": dict(saved),
            "budget_mb": {name: CLOSURE_BUDGET_MB[name] for name in sizes},
            "check_seconds": times,
            "check_offline": offline,
            "check_seconds_without_bytecode": times_no_pyc,
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
