"""Mutation testing: do the behaviour tests notice small, bug-like changes to the core modules?

For each target module, every mutant of bench/mutants.py is written into a scratch copy of the
repository, one at a time, and that module's behaviour tests run against it (`pytest -x`; plan
snapshots are never among them: a snapshot diff says "something changed", not "this is wrong").
A mutant is killed when the tests fail or time out. Prints each verdict and the kill rate (of the
mutants run so far, when a run is ended early).
A clean, traced run first records which test runs which line (bench/line_coverage.py); each
mutant then runs only the tests that run its statement (`--all-tests`: all of them).

    uv run python -m bench.mutation                          # every target (long: see the README)
    uv run python -m bench.mutation --modules dispatcher/sessions/reaper.py,policy/rules.py
    uv run python -m bench.mutation --stride 3               # every 3rd mutant: a bounded sample
    uv run python -m bench.mutation --list                   # the mutants only, nothing runs
    uv run python -m bench.mutation --modules dispatcher/sessions/service.py --lines 118,252   # re-check two lines

CPU-heavy: one pytest per mutant. Run it bounded (`--stride`, `--modules`, `timeout`).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.mutants import mutants

ROOT = Path(__file__).resolve().parents[1]
T = "tests/dispatcher/"  # the dispatcher's tests mirror its packages
DISPATCHER_API = [f"{T}sessions/test_session_service.py", f"{T}sessions/test_sessions.py",
                  f"{T}api/test_request_bounds.py", f"{T}api/test_delete_status.py",
                  f"{T}api/test_errors.py", f"{T}api/test_start.py", f"{T}machines/test_dispatch.py",
                  # both transports in one deployment; a warm start (a claimed bot, local and Fly)
                  f"{T}machines/test_cloud_webrtc.py", f"{T}reserve/test_reserve.py",
                  f"{T}machines/test_fly_reserve.py"]
# The session routes and their signalling: the contract, its documents, both of Pipecat's dialects.
SESSION_ROUTES = [f"{T}api/test_api_document.py", f"{T}api/test_hardening.py", *DISPATCHER_API,
                  f"{T}machines/test_pipecat_cloud.py", f"{T}api/test_pipecat_shapes.py"]
# The TURN relay's policy checks that need no stack (the rest of test_turn.py builds stacks: slow).
TURN_POLICY = [f"tests/infra/test_turn_server.py::{name}" for name in (
    "test_policy_refuses_other_ports_on_the_relay", "test_policy_refuses_an_ssh_rule_on_the_relays_security_group")]
RESERVE = [f"{T}reserve/test_reserve.py", "tests/security/test_idle_bot_credentials.py",
           f"{T}machines/test_fly_reserve.py", f"{T}machines/test_gce_reserve.py", f"{T}machines/test_ecs_reserve.py"]
AWS_CLIENT = [f"{T}machines/test_aws_signing.py", f"{T}machines/test_aws_errors.py"]


def provider_tests(provider: str) -> list[str]:
    """A provider's own tests, then its cases (`-k`) of the files every provider shares."""
    return ["-k", provider, f"{T}machines/test_{provider}.py", f"{T}test_documented_defaults.py",
            f"{T}machines/test_contract.py", f"{T}machines/test_{provider}_reserve.py"]


# module -> the behaviour tests that speak for it (fast ones first: -x stops at the first failure)
TARGETS: dict[str, list[str]] = {
    "dispatcher/sessions/service.py": DISPATCHER_API,
    "dispatcher/api/routers/sessions.py": SESSION_ROUTES,
    "dispatcher/api/routers/offers.py": SESSION_ROUTES,
    "dispatcher/sessions/ids.py": [f"{T}api/test_request_bounds.py", f"{T}api/test_errors.py",
                                   f"{T}regions/test_region_config.py"],
    "dispatcher/regions/config.py": [f"{T}regions/test_region_config.py"],
    "dispatcher/regions/signing.py": [f"{T}regions/test_region_signing.py"],
    "dispatcher/regions/spill.py": [f"{T}regions/test_spill.py"],
    "dispatcher/api/auth.py": [f"{T}api/test_request_bounds.py", f"{T}api/test_errors.py"],
    "dispatcher/sessions/reaper.py": [f"{T}sessions/test_reaper_retries.py", f"{T}sessions/test_reaper.py"],
    "dispatcher/sessions/admission.py": [f"{T}sessions/test_admission.py", f"{T}sessions/test_sessions.py"],
    # the warm reserve: local bots over the channel, then each cloud provider's claim
    "dispatcher/reserve/reserve.py": RESERVE,
    "dispatcher/reserve/claim.py": RESERVE,  # the claim: one idle bot takes one session
    "dispatcher/reserve/idle.py": RESERVE,
    "dispatcher/outbound/provider_errors.py": [f"{T}outbound/test_provider_errors.py"],
    # the bot channel's trust boundary: machine credentials, hellos against them, the claim's unbind
    "dispatcher/channel/credentials.py": ["tests/security/test_credential_format.py", f"{T}channel/test_channel.py",
                                          "tests/security/test_idle_bot_credentials.py"],
    "dispatcher/channel/bots.py": [f"{T}channel/test_link_disconnect.py", f"{T}channel/test_channel.py",
                                   "tests/security/test_channel_rules.py", "tests/security/test_channel_cap.py",
                                   f"{T}channel/test_ownership_writes.py", "tests/security/test_session_binding.py",
                                   "tests/security/test_idle_bot_credentials.py", f"{T}reserve/test_reserve.py",
                                   "tests/security/test_server_limits.py"],
    # which hellos are admitted, alone and across replicas sharing a store (a real redis-server)
    "dispatcher/channel/admission.py": ["tests/security/test_hello_records_bounded.py",
                                        "tests/security/test_channel_rules.py",
                                        "tests/security/test_session_binding.py",
                                        "tests/security/test_idle_bot_credentials.py",
                                        "tests/security/test_channel_rules_across_replicas.py",
                                        f"{T}channel/test_channel.py"],
    # what replicas share, one process or a store (alike, and as one process when the store is down)
    "dispatcher/store/forgiving.py": [f"{T}store/test_coordination_contract.py", f"{T}store/test_secrets_vault.py",
                                      "tests/security/test_channel_rules_across_replicas.py"],
    "dispatcher/store/local.py": [f"{T}store/test_coordination_contract.py"],
    "dispatcher/store/memory.py": [f"{T}store/test_coordination_contract.py", f"{T}sessions/test_admission.py"],
    "dispatcher/store/launches.py": [f"{T}store/test_coordination_contract.py",
                                     f"{T}store/test_claims_rates_health.py"],
    "dispatcher/store/claims.py": ["tests/security/test_channel_rules_across_replicas.py",
                                   f"{T}store/test_claims_rates_health.py", f"{T}reserve/test_reserve_shared.py"],
    # a session's owner record follows its bot's channel between replicas (a real redis-server)
    "dispatcher/channel/ownership.py": [f"{T}channel/test_ownership_writes.py", f"{T}channel/test_ownership.py",
                                        "tests/security/test_channel_rules_across_replicas.py"],
    # a phone call across replicas: its media secret spent once, its frames through the store
    "dispatcher/store/call_media.py": [f"{T}store/test_call_media.py"],
    "dispatcher/store/media_bus.py": [f"{T}store/test_call_media.py"],
    "dispatcher/store/publisher.py": [f"{T}store/test_call_media.py"],
    # where a local bot dials, with a credential of its own
    "dispatcher/channel/access.py": [f"{T}channel/test_access.py", f"{T}api/test_transports.py"],
    "dispatcher/media/turn.py": [f"{T}media/test_turn.py", f"{T}media/test_turn_bounds.py",
                                 f"{T}machines/test_cloud_webrtc.py"],
    # a key's TURN credentials: counted, refused past the bound, in the store; the attack on coturn
    "dispatcher/media/turn_quota.py": [f"{T}media/test_turn_quota.py", "tests/security/test_turn_exhaustion.py"],
    "dispatcher/outbound/retry.py": [f"{T}outbound/test_retry_ratelimit.py", f"{T}outbound/test_retry_send.py"],
    "dispatcher/outbound/ratelimit.py": [f"{T}outbound/test_retry_ratelimit.py"],
    "dispatcher/machines/polling.py": [f"{T}machines/test_polling.py"],
    "dispatcher/machines/bot_environment.py": [f"{T}machines/test_bot_contract.py",
                                               f"{T}machines/test_cold_session_secrets.py"],
    # a cold bot's session secrets: held (sealed in the store), sent at its hello, dropped once taken
    "dispatcher/channel/session_secrets.py": [f"{T}channel/test_session_secrets.py",
                                              f"{T}store/test_secrets_vault.py",
                                              "tests/security/test_session_secrets.py",
                                              f"{T}machines/test_cold_session_secrets.py"],
    # what replicas relay through the store: signed and encrypted, replays and floods refused
    "dispatcher/store/message_seal.py": [f"{T}store/test_message_seal_bounds.py", f"{T}store/test_message_seal.py"],
    # each session's timeline: in memory, in the store, the store down (a real redis-server)
    "dispatcher/store/timelines.py": [f"{T}store/test_timelines.py", f"{T}store/test_coordination_contract.py"],
    # a cloud bot's identity token: its issuer's keys fetched, cached and refetched within bounds
    "dispatcher/channel/id_tokens.py": [f"{T}channel/test_id_tokens.py"],
    # an honest wait: the start's estimate, the waits per key and replica, their streams' deadlines
    "dispatcher/sessions/ready_estimate.py": [f"{T}sessions/test_ready_estimate.py",
                                             f"{T}sessions/test_impatient_start_without_reserve.py",
                                             f"{T}api/test_honest_wait.py"],
    "dispatcher/api/stream_slots.py": [f"{T}api/test_stream_slots.py", f"{T}api/test_honest_wait.py"],
    "dispatcher/observability/metric_lines.py": [f"{T}test_metric_lines.py"],
    "dispatcher/store/secrets_vault.py": [f"{T}store/test_secrets_vault.py",
                                          f"{T}machines/test_cold_session_secrets.py"],
    "dispatcher/sessions/cold_secrets.py": ["tests/security/test_session_secrets.py",
                                            f"{T}machines/test_cold_session_secrets.py"],
    # its own tests, the README's defaults, a caller's room and token properties through the API
    "dispatcher/media/daily.py": [f"{T}media/test_daily.py", f"{T}test_documented_defaults.py",
                                  f"{T}machines/test_pipecat_cloud.py"],
    "dispatcher/machines/fly/provider.py": provider_tests("fly"),
    "dispatcher/machines/gce/provider.py": provider_tests("gce"),
    "dispatcher/machines/gce/auth.py": provider_tests("gce"),
    "dispatcher/machines/gce/labels.py": provider_tests("gce"),
    "dispatcher/machines/fly/reserve.py": provider_tests("fly"),
    "dispatcher/machines/gce/reserve.py": provider_tests("gce"),
    # ECS's client: the signer against botocore's, the credentials cache, error sorting (moto last)
    "dispatcher/machines/ecs/sigv4.py": AWS_CLIENT,
    "dispatcher/machines/ecs/credentials.py": AWS_CLIENT,
    "dispatcher/machines/ecs/json_api.py": [f"{T}machines/test_aws_errors.py"],
    "stacks/aws/iam.py": ["tests/infra/aws/test_iam.py"],
    "stacks/aws/bot_runtime.py": ["tests/infra/aws/test_iam.py", "tests/infra/aws/test_stack.py",
                                  "tests/infra/config/test_channel.py", "tests/infra/test_components.py"],
    "stacks/gcp/bot_template.py": ["tests/infra/gcp/test_stack.py", "tests/infra/gcp/test_startup.py",
                                   "tests/infra/test_components.py"],
    # the creates' deployment-wide limit (ECS, Compute Engine, Fly), the reserve's prices and its
    # concurrent refills
    "dispatcher/machines/creates.py": [f"{T}machines/test_cloud_creates.py"],
    "dispatcher/reserve/prices.py": [f"{T}reserve/test_reserve_prices.py"],
    "dispatcher/reserve/refills.py": [f"{T}reserve/test_reserve_refills.py"],
    # a local bot's hello bound to the process launched for it (its launch socket's nonce); its own
    # unit tests first: the end-to-end ones run it in a dispatcher process, where no trace reaches
    "dispatcher/machines/local/launch_proof.py": [f"{T}machines/test_launch_proof.py",
                                                  "tests/security/test_local_cold_race.py",
                                                  "tests/security/test_server_limits.py"],
    # used once across replicas, and remembered at the replica that saw it (a real redis-server)
    "dispatcher/store/spent.py": [f"{T}store/test_spent.py", "tests/security/test_webhook_replicas.py"],
    # the stacks' observability settings: JSON logs, the optional trace collector
    "stacks/config/observability.py": ["tests/infra/config/test_observability.py"],
    "policy/rules.py": ["tests/infra/policy/test_turn.py", *TURN_POLICY, "tests/infra/policy/test_channel.py",
                        "tests/infra/policy/test_pack.py"],
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


def run_tests(
    workdir: Path, tests: list[str], timeout: float, *, trace: tuple[Path, Path] | None = None
) -> tuple[str, float]:
    """'passed', 'failed' or 'timeout', and the seconds it took. `trace`: (module, out) records
    which test runs which line of the module (bench/line_coverage.py); a failing traced run (the
    clean one) shows pytest's summary."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no stale bytecode between two mutants
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    if trace is not None:
        env.update(MUTATION_TRACE_FILE=str(trace[0]), MUTATION_TRACE_OUT=str(trace[1]))
        command[3:3] = ["-p", "bench.line_coverage"]
    began = time.monotonic()
    try:
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - began
    if result.returncode != 0 and trace is not None:
        sys.stderr.write(result.stdout.decode(errors="replace")[-3000:])
        sys.stderr.write(result.stderr.decode(errors="replace")[-2000:])
    return ("passed" if result.returncode == 0 else "failed"), time.monotonic() - began


class Coverage:
    """Which tests run a mutant's statement, from the clean run's trace (bench/line_coverage.py)."""

    def __init__(self, trace: dict[str, Any], source: str) -> None:
        self._import = set(trace["import"])
        self._tests = {test: set(lines) for test, lines in trace["tests"].items()}
        self._order: list[str] = trace["order"]
        # a mutant names its node's first line: run the tests that ran any line of its innermost
        # statement (a def or class from its first decorator: those run at import)
        self._statements = [(min([n.lineno, *(d.lineno for d in getattr(n, "decorator_list", []))]),
                             n.end_lineno or n.lineno) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.stmt)]

    def tests_for(self, line: int) -> list[str] | None:
        """The tests to run, in their order; None: every test (the statement runs at import)."""
        spans = [(first, last) for first, last in self._statements if first <= line <= last]
        if not spans:
            return None
        first, last = max(spans, key=lambda span: (span[0], -span[1]))
        lines = set(range(first, last + 1))
        if lines & self._import:
            return None
        return [test for test in self._order if self._tests.get(test, set()) & lines]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", help="comma-separated subset of: " + ", ".join(TARGETS))
    parser.add_argument("--stride", type=int, default=1, help="run every Nth mutant of each module (default 1)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--lines", help="only the mutants on these lines, e.g. 118,252 (re-checking survivors)")
    parser.add_argument("--all-tests", action="store_true",
                        help="run every test of the module on each mutant, not only those that run its statement")
    args = parser.parse_args(argv)
    modules = args.modules.split(",") if args.modules else list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module(s): {', '.join(unknown)}")
    chosen = {m: list(mutants(m, (ROOT / m).read_text()))[:: args.stride] for m in modules}
    if args.lines:
        wanted = {int(line) for line in args.lines.split(",")}
        chosen = {m: [mutant for mutant in found if mutant.line in wanted] for m, found in chosen.items()}
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
            trace_out = workdir / ".mutation-trace.json"
            trace = None if args.all_tests else (workdir / module, trace_out)
            outcome, baseline = run_tests(workdir, tests, timeout=1800, trace=trace)
            if outcome != "passed":
                print(f"{module}: its tests do not pass unmutated ({outcome}); skipped", file=sys.stderr)
                continue
            original = (workdir / module).read_text()
            coverage = None if trace is None else Coverage(json.loads(trace_out.read_text()), original)
            survivors: list[str] = []
            # kept up to date: a run ended early (SIGTERM) still reports the mutants it ran
            result: dict[str, object] = {"mutants": 0, "killed": 0, "survivors": survivors, "of": len(found)}
            results[module] = result
            for number, mutant in enumerate(found, 1):
                selected = None if coverage is None else coverage.tests_for(mutant.line)
                if selected == []:
                    outcome = "passed"  # no test runs its statement: nothing can notice it
                else:
                    (workdir / module).write_text(mutant.source)
                    outcome, _ = run_tests(workdir, selected or tests, timeout=3 * baseline + 10)
                verdict = "survived" if outcome == "passed" else "killed"
                note = " (no test runs it)" if selected == [] else ""
                print(f"{verdict:9} [{number}/{len(found)}] {mutant}{note}", flush=True)
                if outcome == "passed":
                    survivors.append(f"{mutant}{note}")
                result.update(mutants=number, killed=number - len(survivors))
            (workdir / module).write_text(original)
            print(f"{module}: {result['killed']}/{len(found)} killed ({baseline:.0f} s per clean run)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        _report(results, args.stride, args.json)
    return 0


def _report(results: dict[str, dict[str, object]], stride: int, out: Path | None) -> None:
    total = sum(int(r["mutants"]) for r in results.values())  # type: ignore[call-overload]
    killed = sum(int(r["killed"]) for r in results.values())  # type: ignore[call-overload]
    print(f"TOTAL: {killed}/{total} mutants killed ({100 * killed / max(total, 1):.1f} %), stride {stride}")
    if out is not None:
        out.write_text(json.dumps({"stride": stride, "modules": results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
