"""Mutation testing: do the behaviour tests notice small, bug-like changes to the core modules?

For each target module, every mutant of bench/mutants.py is written into a scratch copy of the
repository, one at a time, and that module's behaviour tests run against it (`pytest -x`; plan
snapshots are never among them: a snapshot diff says "something changed", not "this is wrong").
A mutant is killed when the tests fail or time out. Prints each survivor and the kill rate.

    uv run python -m bench.mutation                          # every target (long: see the README)
    uv run python -m bench.mutation --modules dispatcher/reaper.py,policy/rules.py
    uv run python -m bench.mutation --stride 3               # every 3rd mutant: a bounded sample
    uv run python -m bench.mutation --list                   # the mutants only, nothing runs

CPU-heavy: one pytest per mutant. Run it bounded (`--stride`, `--modules`, `timeout`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.mutants import Mutant, mutants

ROOT = Path(__file__).resolve().parents[1]
DISPATCHER_API = ["tests/dispatcher/test_sessions.py", "tests/dispatcher/test_request_bounds.py",
                  "tests/dispatcher/test_delete_status.py", "tests/dispatcher/test_errors.py",
                  "tests/dispatcher/test_start.py", "tests/providers/test_dispatch.py"]
# The TURN relay's policy checks that need no stack (the rest of test_turn.py builds stacks: slow).
TURN_POLICY = [f"tests/infra/test_turn.py::{name}" for name in (
    "test_policy_refuses_other_ports_on_the_relay", "test_policy_refuses_an_ssh_rule_on_the_relays_security_group")]


def provider_tests(provider: str) -> list[str]:
    """A provider's own tests, then its cases (`-k`) of the files every provider shares."""
    return ["-k", provider, f"tests/providers/test_{provider}.py", "tests/providers/test_documented_defaults.py",
            "tests/providers/test_contract.py", f"tests/providers/test_{provider}_reserve.py"]


# module -> the behaviour tests that speak for it (fast ones first: -x stops at the first failure)
TARGETS: dict[str, list[str]] = {
    "dispatcher/sessions.py": DISPATCHER_API,
    "dispatcher/routes.py": DISPATCHER_API,
    "dispatcher/session_ids.py": ["tests/dispatcher/test_request_bounds.py", "tests/dispatcher/test_errors.py"],
    "dispatcher/auth.py": ["tests/dispatcher/test_request_bounds.py", "tests/dispatcher/test_errors.py"],
    "dispatcher/reaper.py": ["tests/dispatcher/test_reaper_retries.py", "tests/dispatcher/test_reaper.py"],
    "dispatcher/provider_errors.py": ["tests/dispatcher/test_provider_errors.py"],
    "dispatcher/retry.py": ["tests/providers/test_retry_ratelimit.py"],
    "dispatcher/ratelimit.py": ["tests/providers/test_retry_ratelimit.py"],
    "dispatcher/bot_contract.py": ["tests/providers/test_bot_contract.py"],
    "dispatcher/daily.py": ["tests/providers/test_daily.py"],
    "dispatcher/machines/fly.py": provider_tests("fly"),
    "dispatcher/machines/gce.py": provider_tests("gce"),
    "stacks/iam.py": ["tests/infra/test_iam_scope.py"],
    "stacks/aws_bot.py": ["tests/infra/test_iam_scope.py", "tests/infra/test_aws.py", "tests/infra/test_channel.py"],
    "policy/rules.py": ["tests/infra/test_policy.py", "tests/infra/test_policy_channel.py", *TURN_POLICY],
}


def scratch_copy() -> Path:
    """The repository's tracked files in a temporary directory (the tests import from there)."""
    target = Path(tempfile.mkdtemp(prefix="voicefleet-mutation-"))
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source, dest = ROOT / name, target / name
        if source.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    return target


def run_tests(workdir: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """'passed', 'failed' or 'timeout', and the seconds it took."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no stale bytecode between two mutants
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    began = time.monotonic()
    try:
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - began
    return ("passed" if result.returncode == 0 else "failed"), time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", help="comma-separated subset of: " + ", ".join(TARGETS))
    parser.add_argument("--stride", type=int, default=1, help="run every Nth mutant of each module (default 1)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    modules = args.modules.split(",") if args.modules else list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module(s): {', '.join(unknown)}")
    chosen = {m: list(mutants(m, (ROOT / m).read_text()))[:: args.stride] for m in modules}
    if args.list:
        for found in chosen.values():
            print(*found, sep="\n")
        print(f"{sum(map(len, chosen.values()))} mutants")
        return 0
    # `timeout` (the way to bound a run) sends SIGTERM: exit through `finally`, removing the copy.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = scratch_copy()
    results: dict[str, dict[str, object]] = {}
    try:
        for module, found in chosen.items():
            tests = TARGETS[module]
            outcome, baseline = run_tests(workdir, tests, timeout=600)
            if outcome != "passed":
                print(f"{module}: its tests do not pass unmutated ({outcome}); skipped", file=sys.stderr)
                continue
            survivors: list[Mutant] = []
            original = (workdir / module).read_text()
            for mutant in found:
                (workdir / module).write_text(mutant.source)
                outcome, _ = run_tests(workdir, tests, timeout=3 * baseline + 10)
                if outcome == "passed":
                    survivors.append(mutant)
                    print(f"survived  {mutant}", flush=True)
            (workdir / module).write_text(original)
            killed = len(found) - len(survivors)
            results[module] = {"mutants": len(found), "killed": killed, "survivors": [str(m) for m in survivors]}
            print(f"{module}: {killed}/{len(found)} killed ({baseline:.0f} s per clean run)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = sum(int(r["mutants"]) for r in results.values())  # type: ignore[call-overload]
    killed = sum(int(r["killed"]) for r in results.values())  # type: ignore[call-overload]
    print(f"TOTAL: {killed}/{total} mutants killed ({100 * killed / max(total, 1):.1f} %), stride {args.stride}")
    if args.json:
        args.json.write_text(json.dumps({"stride": args.stride, "modules": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
