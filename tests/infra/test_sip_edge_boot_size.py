"""A trunk with many numbers makes a boot script past its cloud's limit: the stack refuses it while the old
VM still stands (each is deleted before its replacement is created), at a preview too, where a new image's
digest is unknown, naming the count and the fix."""

from __future__ import annotations

import json

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Run, run_program
from tests.infra.aws.test_sip_edge import EDGE, EDGE_SECRETS, HTTPS
from tests.infra.conftest import config_for

LIMITS = {"azure": "65,535-byte customData", "aws": "16,384-byte user data"}
KINDS = {"azure": "azure-native:compute:VirtualMachine", "aws": "aws:ec2/instance:Instance"}


def _edge_stack(cloud: str, numbers: int, *, preview: bool) -> Run:
    twilio = EDGE["trunks"][0]
    key = next(iter(twilio["numbers"].values()))
    edge = {**EDGE, "trunks": [{**twilio, "numbers": {f"+1415{n:07d}": key for n in range(numbers)}}]}
    overrides = {**(HTTPS if cloud == "aws" else {}), "sipEdge": json.dumps(edge)}
    return run_program(config_for(cloud, overrides, EDGE_SECRETS), list(EDGE_SECRETS), stack=f"{cloud}-test",
                       preview=preview)


@pytest.mark.parametrize("preview", [True, False])
@pytest.mark.parametrize(("cloud", "numbers"), [("azure", 1_600), ("aws", 400)])
def test_a_boot_script_past_the_clouds_limit_is_refused(cloud: str, numbers: int, preview: bool) -> None:
    with pytest.raises(SettingsError, match=f"over {cloud}'s {LIMITS[cloud]} limit; its trunks map {numbers:,} "
                                            "numbers .*: map fewer numbers to this stack's edge"):
        _edge_stack(cloud, numbers, preview=preview)


@pytest.mark.parametrize(("cloud", "numbers"), [("azure", 1_000), ("aws", 100)])
def test_a_boot_script_within_the_limit_is_made(cloud: str, numbers: int) -> None:
    run = _edge_stack(cloud, numbers, preview=False)
    assert [r for r in run.of_type(KINDS[cloud]) if r.name.endswith("-sip-edge")]
