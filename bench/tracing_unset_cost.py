"""Whether tracing, left unset, moves a warm start: today's tree against the tree before tracing.

    uv run --all-groups python -m bench.tracing_unset_cost --runs 7 [--base 059d061]

`--base` (default: 059d061, main just before OpenTelemetry came in) is checked out as a detached
git worktree in a temporary directory with its own locked environment (`uv sync --frozen`: that
tree's FastAPI, without today's SDK); two local dispatchers run side by side, each a process of its
own running its own tree in its own environment (`python -m dispatcher` there, so its bots are
that tree's `python -m bot` too), both with every `OTEL_*` variable removed from their environment. The client
(this process) is the same for both. Each run is bench/warm_start.py's: `POST /start` (a warm
claim), the aiortc client's offer through the dispatcher, the bot's first audio at the client.
Runs interleave, and the order flips every run (base first, then today's first) so neither side
always runs right after the other's replacement bot started warming. Prints medians [min–max]
and the load average. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.warm_start import one_start, report, wait_for_idle_bot
from tests.support.processes import run_dispatcher

HERE = Path(__file__).resolve().parent.parent
BEFORE_TRACING = "059d061"


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """`commit` checked out beside this one with its own locked environment, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="voicefleet-base-") as parent:
        path = Path(parent) / "tree"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--quiet", str(path), commit],
                       check=True)
        try:
            subprocess.run(["uv", "sync", "--all-groups", "--frozen", "--compile-bytecode", "--quiet"], cwd=path,
                           check=True, timeout=600)
            yield path
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(path)], check=False)


def in_tree(tree: Path) -> tuple[str, ...]:
    """A `run_dispatcher` prefix: drops the interpreter it is given and runs the rest with `tree`'s own,
    in `tree` (so `-m dispatcher` is that tree's, and so are its bots, which use the same interpreter)."""
    script = f'cd "{tree}" && shift && exec "{tree}/.venv/bin/python" "$@"'
    return ("sh", "-c", script, "in-tree")


def untraced(env: dict[str, str]) -> dict[str, str]:
    """The bench's own environment without any `OTEL_*` (a developer's shell may have some)."""
    return {name: value for name, value in env.items() if not name.startswith("OTEL_")}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--base", default=BEFORE_TRACING, help="the commit to compare with (default: %(default)s)")
    args = parser.parse_args()
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        del os.environ[name]  # run_dispatcher passes this environment on
    load_before = os.getloadavg()
    with worktree(args.base) as base_tree, tempfile.TemporaryDirectory() as logs:
        base_logs, today_logs = Path(logs) / "base", Path(logs) / "today"
        base_logs.mkdir()
        today_logs.mkdir()
        reserve = {"RESERVE_MIN_IDLE": "1"}
        with (
            run_dispatcher(base_logs, reserve, command_prefix=in_tree(base_tree)) as base,
            run_dispatcher(today_logs, reserve, command_prefix=in_tree(HERE)) as today,
        ):
            async with (
                httpx.AsyncClient(base_url=base.base_url, timeout=60) as base_api,
                httpx.AsyncClient(base_url=today.base_url, timeout=60) as today_api,
            ):
                sides = {"base": (base_api, base.base_url), "today": (today_api, today.base_url)}
                rows: dict[str, list[dict[str, float]]] = {"base": [], "today": []}
                for run in range(args.runs):
                    for name in ("base", "today") if run % 2 == 0 else ("today", "base"):
                        api, url = sides[name]
                        await wait_for_idle_bot(api)
                        rows[name].append(await one_start(api, url))
    load_after = os.getloadavg()
    print(f"base {args.base} against today's tree ({tree_head()}), OTEL_* unset in both")
    print(f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}")
    print(f"{'tree':5} {'metric':28} {'median':>9}  [min–max]")
    report("base", rows["base"])
    report("today", rows["today"])


def tree_head() -> str:
    head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip() or "unknown"


if __name__ == "__main__":
    asyncio.run(main())
