"""What `voicefleet config check --stack` imports beyond its stack's program: the stacks' own tables and
the dispatcher's parsers, none of the web framework or a provider's client (aiohttp, google-auth,
cryptography, the metrics), pydantic (for a SIP edge's key, which no example stack sets) nor the plan's
preflight rules: together they cost a first check some 0.5 s of CPU (docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# aws-prod's program (pulumi-aws under mocks) imports none of these itself: what is here, the check brought.
NOT_FOR_A_CHECK = ("fastapi", "starlette", "aiohttp", "google.auth", "cryptography", "prometheus_client", "redis",
                   # the SIP edge key's models, for a stack with no edge (0.07 s); the plan's preflight rules (0.02 s)
                   "pydantic", "stacks.config.sip_edge_keys", "stacks.tools.preflight.stack",
                   "dispatcher.reserve.planner")  # the reserve planner, for a stack of several regions
SCRIPT = """import json, runpy, sys
sys.argv = ["config_check", "check", "--stack", "aws-prod"]
try:
    runpy.run_module("stacks.tools.config_check", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "imported": [name for name in NAMES if name in sys.modules]}))
"""


def test_a_stack_check_imports_no_client(tmp_path: Path) -> None:
    script = SCRIPT.replace("NAMES", repr(NOT_FOR_A_CHECK))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ) | {"PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path)},
                          check=False)
    answer = json.loads(done.stdout.splitlines()[-1]) if done.stdout else pytest.fail(done.stderr[-2000:])
    assert answer == {"code": 1, "imported": []}  # 1: aws-prod's values its first `up` still needs, named


# Modules of each cloud's service packages that no example stack uses: a check imports the modules of the
# resources and functions its program names (stacks/tools/lazy_sdk.py), never the whole package (0.5 s).
UNUSED = {"gcp-prod": ("pulumi_gcp", "pulumi_gcp.compute.vpn_tunnel"),
          "azure-prod": ("pulumi_azure_native", "pulumi_azure_native.network.vpn_gateway")}
SDK_SCRIPT = """import json, runpy, sys
sys.argv = ["config_check", "check", "--stack", STACK]
try:
    runpy.run_module("stacks.tools.config_check", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": [name for name in sys.modules if name.startswith(SDK + ".")]}))
"""


@pytest.mark.parametrize("stack", sorted(UNUSED))
def test_a_stack_check_imports_only_the_sdk_modules_its_program_uses(stack: str, tmp_path: Path) -> None:
    sdk, unused = UNUSED[stack]
    script = SDK_SCRIPT.replace("STACK", repr(stack)).replace("SDK", repr(sdk))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ) | {"PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path)},
                          check=False)
    answer = json.loads(done.stdout.splitlines()[-1]) if done.stdout else pytest.fail(done.stderr[-2000:])
    assert answer["code"] == 1  # the values its first `up` still needs, named
    modules = {name for name in answer["modules"] if name.count(".") >= 2}  # the service packages' modules
    # The program's resources and functions are a few modules of each package it uses: whole, gcp-prod's
    # packages were some 500 modules, azure-prod's 680 (pulumi's lazy_import leaves the unused ones empty).
    assert unused not in modules and 0 < len(modules) < 120, sorted(modules)
