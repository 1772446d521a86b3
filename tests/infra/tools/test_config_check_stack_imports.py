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
