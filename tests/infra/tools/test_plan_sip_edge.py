"""The plan of a stack whose `sipEdge` was set with `pulumi config set --path` (strings at its leaves, as
the CLI writes them) and whose digest password with `--secret --path`: offline, with every secret
masked, it passes and says how many calls the edge holds; a file the edge would refuse is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.tools import paths
from stacks.tools import plan as plan_module
from stacks.tools.mocks import Deployed, Registration, Run, run_program
from stacks.tools.plan import main, stack_config
from stacks.tools.preflight import protected_deletes
from stacks.tools.preflight.replacements import host_notes

SET_WITH_PATH = """\
  voicefleet:certificateArn: arn:aws:acm:us-east-1:123456789012:certificate/plan
  voicefleet:dispatcherDomain: voice.example.com
  voicefleet:sipEdge:
    enabled: "true"
    workers: "{workers}"
    trunks:
      - name: twilio
        sources:
          - 54.172.60.0/30
        mediaSources:
          - 168.86.128.0/18
        numbers:
          "+14155550199": team-a
        terminationUri: sip:example.pstn.twilio.com
        callers:
          - team-a
        destinations:
          - +1*
        digestUsername: voicefleet
  voicefleet:sipEdgeDigestPasswords:
    twilio:
      secure: v1:3b9Qk1QmN0Lx7y2d:Jt1m0Jf2Yk8m3Q==
"""


def _stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, cloud: str = "aws") -> str:
    """The cloud's dev stack file with the edge set; a GCP or Azure stack without the AWS stack's HTTPS keys
    (Cloud Run's and Container Apps' URLs are HTTPS already)."""
    stack = f"{cloud}-dev"
    original = paths.stack_file(stack).read_text()
    edge = SET_WITH_PATH.format(workers=workers)
    if cloud != "aws":
        edge = "".join(line for line in edge.splitlines(keepends=True)
                       if "certificateArn" not in line and "dispatcherDomain" not in line)
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(original.replace("config:\n", "config:\n" + edge, 1))
    monkeypatch.setattr(paths, "STACK_FILES", tmp_path)
    monkeypatch.setattr(plan_module, "REPOSITORY", tmp_path)
    return stack


def test_the_plan_says_how_many_calls_the_edge_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main([_stack(tmp_path, monkeypatch, 1)]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "SIP edge: 1 worker(s) on one c7i.large hold 3 calls at once" in captured.err
    assert "voicefleet-aws-dev-sip-edge" in captured.out and "v1:" not in captured.out


def test_the_plan_refuses_what_the_edge_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main([_stack(tmp_path, monkeypatch, 64)]) == 2  # the default 400 RTP ports hold 50 workers at most
    assert "rtp_port_count: 64 workers need at least 512 RTP ports" in capsys.readouterr().err


EDGE: dict[str, Any] = {"enabled": True, "trunks": [
    {"name": "twilio", "sources": ["54.172.60.0/30"], "mediaSources": ["168.86.128.0/18"],
     "numbers": {"+14155550199": "team-a"}, "terminationUri": "sip:example.pstn.twilio.com", "callers": ["team-a"],
     "destinations": ["+1*"], "digestUsername": "voicefleet"}]}


NEW_NUMBER = {"trunks": [{**EDGE["trunks"][0], "numbers": {"+14155550199": "team-a", "+14155550198": "team-a"}}]}


def _planned(stack: str, overrides: dict[str, str]) -> tuple[list[Registration], list[Registration]]:
    """The two runs a plan with `overrides` compares (stacks/tools/plan.py checked_plan): the stack file's,
    recorded as deployed, then the change's against its outputs. The stack file's run is made once per file
    for the module (the mocks are deterministic: tests/infra/program_cache.py)."""
    deployed_config, deployed_secrets = stack_config(stack)
    key = json.dumps([stack, deployed_config, deployed_secrets], sort_keys=True)
    if key not in _DEPLOYED:
        _DEPLOYED[key] = run_program(deployed_config, deployed_secrets, stack=stack)
    before = _DEPLOYED[key]
    last_up = Deployed()
    last_up.record(before)
    config, secret_keys = dict(deployed_config), list(deployed_secrets)
    for key_, value in overrides.items():
        full = key_ if ":" in key_ else f"voicefleet:{key_}"
        config[full] = value
        secret_keys = [name for name in secret_keys if name != full]
    return before.registrations, run_program(config, secret_keys, stack=stack, deployed=last_up).registrations


_DEPLOYED: dict[str, Run] = {}


def test_the_plan_says_a_change_that_replaces_the_edges_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The plan's wiring, end to end, for one cloud's one change; each cloud's notes on each change are
    checked below where the plan makes them (replacements.host_notes over the plan's two runs)."""
    stack = _stack(tmp_path, monkeypatch, 1, "aws")
    assert main([stack, "--config", f"sipEdge={json.dumps({**EDGE, **NEW_NUMBER})}"]) == 0, capsys.readouterr().err
    assert ("voicefleet-aws-dev-sip-edge: its boot script changes, which replaces the host (the old one deleted "
            "first); this stops the SIP edge: it refuses new calls") in capsys.readouterr().err


@pytest.mark.parametrize(("cloud", "change", "said"), [
    ("aws", NEW_NUMBER, "voicefleet-aws-dev-sip-edge: its boot script changes, which replaces the host (the old one "
                        "deleted first); this stops the SIP edge: it refuses new calls"),
    ("aws", {"instanceType": "c7i.xlarge"}, "voicefleet-aws-dev-sip-edge: its instanceType changes from c7i.large to "
                                            "c7i.xlarge, which stops and starts the host; this stops the SIP edge"),
    ("gcp", NEW_NUMBER, "voicefleet-gcp-dev-sip-edge: its boot script changes, which replaces the host (the old one "
                        "deleted first); this stops the SIP edge: it refuses new calls"),
    ("gcp", {"machineType": "n2-standard-4"}, "voicefleet-gcp-dev-sip-edge: its machineType changes from "
                                              "n2-standard-2 to n2-standard-4, which stops and starts the host; this "
                                              "stops the SIP edge"),
    ("azure", NEW_NUMBER, "voicefleet-azure-dev-sip-edge: its boot script changes, which replaces the host (the old "
                          "one deleted first); this stops the SIP edge: it refuses new calls"),
    ("azure", {"vmSize": "Standard_D4s_v5"}, "voicefleet-azure-dev-sip-edge: its hardwareProfile.vmSize changes from "
                                             "Standard_D2s_v5 to Standard_D4s_v5, which stops and starts the host; "
                                             "this stops the SIP edge"),
])
def test_a_change_that_replaces_or_stops_the_edges_host_is_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cloud: str, change: dict[str, Any], said: str) -> None:
    """Where the plan's note is made (the plan itself says it: the test above)."""
    stack = _stack(tmp_path, monkeypatch, 1, cloud)
    assert said in "\n".join(host_notes(*_planned(stack, {"sipEdge": json.dumps({**EDGE, **change})})))


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_the_plan_says_nothing_of_the_host_when_the_edge_stays_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cloud: str) -> None:
    notes = host_notes(*_planned(_stack(tmp_path, monkeypatch, 1, cloud), {"sipEdge": json.dumps(EDGE)}))
    assert not [note for note in notes if "sip-edge: its" in note], notes


@pytest.mark.parametrize(("change", "said"), [
    ("gcpZone=us-central1-b", "voicefleet-gcp-dev-sip-edge: its zone changes, which replaces the host (the old one "
                               "deleted first); this stops the SIP edge: it refuses new calls"),
])
def test_the_plan_says_a_new_zone_replaces_the_gcp_edges_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, said: str) -> None:
    """A zone is ForceNew on a Compute Engine instance, as its boot disk is: neither the boot script nor
    the machine type changes, yet the VM is deleted, then made again."""
    stack = _stack(tmp_path, monkeypatch, 1, "gcp")
    assert said in "\n".join(host_notes(*_planned(stack, dict([change.split("=", 1)]))))


@pytest.mark.parametrize(("cloud", "address", "urn"), [
    ("aws", "aws:ec2/eip:Eip voicefleet-aws-dev-sip-edge",
     "voicefleet:aws:AwsStack$voicefleet:aws:SipEdge$aws:ec2/eip:Eip::voicefleet-aws-dev-sip-edge"),
    ("gcp", "gcp:compute/address:Address voicefleet-gcp-dev-sip-edge",
     "voicefleet:gcp:GcpStack$voicefleet:gcp:SipEdge$gcp:compute/address:Address::voicefleet-gcp-dev-sip-edge"),
    ("azure", "azure-native:network:PublicIPAddress voicefleet-azure-dev-sip-edge",
     "voicefleet:azure:AzureStack$voicefleet:azure:SipEdge$azure-native:network:PublicIPAddress::"
     "voicefleet-azure-dev-sip-edge")])
def test_the_plan_says_turning_a_protected_stacks_edge_off_needs_its_address_unprotected_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cloud: str,
        address: str, urn: str) -> None:
    """The plan says it end to end on AWS; on the other clouds, where the plan makes the note
    (protected_deletes.notes over the plan's two runs)."""
    stack = _stack(tmp_path, monkeypatch, 1, cloud)
    file = tmp_path / f"Pulumi.{stack}.yaml"
    file.write_text(file.read_text().replace("config:\n", 'config:\n  voicefleet:protect: "true"\n', 1))
    off = {"sipEdge": json.dumps({**EDGE, "enabled": False})}
    if cloud == "aws":
        assert main([stack, "--config", f"sipEdge={off['sipEdge']}"]) == 0, capsys.readouterr().err
        said = capsys.readouterr().err
    else:
        said = "\n".join(protected_deletes.notes(*_planned(stack, off), stack))
    assert f"{address} is protected, and this change deletes it, which `pulumi up` refuses" in said
    # The engine's URN: the type qualified by every ancestor's (the stack's component's too).
    assert f"`pulumi state unprotect -s {stack} 'urn:pulumi:{stack}::voicefleet::{urn}'`" in said
