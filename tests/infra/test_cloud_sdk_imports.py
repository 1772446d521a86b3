"""A stack imports its own cloud's Pulumi SDK and no other: each SDK is most of a first
`voicefleet config check --stack`'s CPU (docs/performance.md), and a shared constant that pulls a
second cloud's SDK in costs every stack of the first its import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.infra.helpers import ROOT

SDKS = {"aws": "pulumi_aws", "gcp": "pulumi_gcp", "azure": "pulumi_azure_native", "k8s": "pulumi_kubernetes"}
PROBE = """
import sys
import stacks.{cloud}.stack
print(" ".join(sorted(sdk for sdk in {sdks!r} if sdk in sys.modules)))
"""


@pytest.mark.parametrize("cloud", sorted(SDKS))
def test_a_clouds_stack_imports_no_other_clouds_sdk(cloud: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE.format(cloud=cloud, sdks=sorted(SDKS.values()))], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    others = set(done.stdout.split()) - {SDKS[cloud]}
    assert not others, f"stacks.{cloud}.stack imports {sorted(others)}"
