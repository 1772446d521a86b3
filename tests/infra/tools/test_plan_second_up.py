"""With `--config`, the plan runs the change as the stack's next `up`: the stack file's configuration runs
first and its outputs are recorded (as `pulumi up` leaves them), so the refusals the program makes from its
own last outputs show offline. And what a platform team reads in it: each resource's `ignoreChanges` and
`dependsOn`, the resource each diff hunk is in, a long condition a clause a line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.tools import plan as plan_module
from stacks.tools.paths import SNAPSHOTS
from stacks.tools.plan import checked_plan, diff, main
from tests.infra.tools.secure_stack import write_stack

RECORDING = {"recording": "on", "recordingRules": "key:acme days=30", "recordingHold": "true"}


@pytest.mark.parametrize("change", [["recordingHold=false"], ["recording=off"],
                                    ["recordingHold=false", "recordingDeleteOnDestroy=true"]])
def test_a_change_the_next_up_refuses_is_refused_by_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        change: list[str]) -> None:
    """A stack that records with holds: `pulumi up` refuses each of these from its last outputs
    (stacks/shared/recording_last_up.py); the plan used to show a clean removal and exit 0."""
    stack = write_stack(tmp_path, monkeypatch, "aws-dev", "", RECORDING)
    assert main([stack, *(f"--config={item}" for item in change)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("aws-dev: Invalid stack configuration: ") and "this stack" in line


def test_the_fix_a_refused_stack_file_needs_plans_as_a_first_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A stack file this version refuses (delete-on-destroy beside prod's protect) cannot be replayed as the
    deployed stack: the change that fixes it plans without the replay, saying why, and the file alone is
    still refused."""
    stack = write_stack(tmp_path, monkeypatch, "aws-prod", "", {"recording": "on",
                                                                "recordingDeleteOnDestroy": "true"})
    assert main([stack, "--config", "recordingDeleteOnDestroy=false"]) == 0
    err = capsys.readouterr().err
    assert ("# aws-prod note: the deployed file is refused by this version (Invalid stack configuration: "
            "voicefleet:recordingDeleteOnDestroy is true with protect") in err
    assert "planning the change as a first up" in err
    assert main([stack, "--config", "recordingRules=key:acme days=30"]) == 2
    assert "recordingDeleteOnDestroy is true with protect" in capsys.readouterr().err


def test_a_refused_stack_file_plans_as_a_first_up_only_the_fix_its_refusal_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the replay nothing checks a change against the last `up` (its outputs' refusals, immutable
    fields, replacements): lifting the holds beside the fix used to plan as a first up and exit 0."""
    stack = write_stack(tmp_path, monkeypatch, "aws-prod", "", {**RECORDING, "recordingDeleteOnDestroy": "true"})
    assert main([stack, "--config", "recordingDeleteOnDestroy=false", "--config", "recordingHold=false"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("aws-prod: the deployed file is refused by this version (Invalid stack configuration: ")
    assert line.endswith("then the change to voicefleet:recordingHold")
    assert main([stack, "--config", "recordingDeleteOnDestroy=false"]) == 0
    assert "planning the change as a first up" in capsys.readouterr().err


def test_a_namespace_move_the_k8s_stack_refuses_is_refused_by_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["k8s-dev", "--config", "k8sBotNamespace=voicefleet-moved"]) == 2
    assert "k8sBotNamespace is 'voicefleet-moved', but this stack's last `up` made" in capsys.readouterr().err


def test_a_change_the_next_up_takes_still_plans() -> None:
    text, problems, _ = checked_plan("aws-dev", {"recording": "on"})
    assert problems == [] and "aws:s3/bucket:Bucket  voicefleet-aws-dev-recordings" in text


def test_ignore_changes_and_depends_on_print_one_line_each() -> None:
    text, _, _ = checked_plan("aws-dev", RECORDING)
    bucket = text.split("aws:s3/bucket:Bucket  voicefleet-aws-dev-recordings")[1].split("\n\n")[0]
    assert "\n  ignoreChanges: objectLockEnabled\n" in bucket
    # S3 turns Object Lock on for a bucket once it is versioned (stacks/aws/recordings.py): no input says so.
    lock = text.split("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration  ")[1].split("\n\n")[0]
    assert "\n  dependsOn: aws:s3/bucketVersioning:BucketVersioning  voicefleet-aws-dev-recordings\n" in lock


def test_each_hunk_names_the_resource_its_change_is_in() -> None:
    before = (SNAPSHOTS / "aws-dev.txt").read_text()
    after = before.replace("retentionInDays: 7", "retentionInDays: 14", 1)
    (hunk,) = [line for line in diff("aws-dev", before, after, "HEAD").splitlines() if line.startswith("@@")]
    lines = before.splitlines()
    changed = next(i for i, line in enumerate(lines) if "retentionInDays: 7" in line)
    resource = next(lines[i] for i in range(changed, -1, -1) if lines[i] and not lines[i].startswith((" ", "#")))
    assert hunk.endswith(f"@@ {resource}") and resource.startswith("aws:")


def test_a_long_condition_prints_a_clause_a_line() -> None:
    clauses = [f"object.spec.field{i} == 'a-value-long-enough-to-matter-{i}'" for i in range(6)]
    shown = plan_module._scalar(" && ".join(clauses), "    ")
    assert shown.splitlines() == [">", f"      {clauses[0]}", *(f"      && {c}" for c in clauses[1:])]
    assert plan_module._scalar("a && b") == "a && b"  # short: as it is
    k8s, _, _ = checked_plan("k8s-dev", {"k8sModelImage": "registry.example.com/m@sha256:" + "e" * 64})
    assert not [line for line in k8s.splitlines() if len(line) > 300 and " && " in line]


def test_a_folded_or_literal_block_under_a_nested_key_reads_back_as_yaml() -> None:
    """A block's lines go two further in than its key, at any depth: YAML reads the plan's text as the value."""
    condition = " && ".join(f"object.spec.field{i} == 'a-value-long-enough-to-matter-{i}'" for i in range(6))
    script = "#!/bin/sh\nset -eu\nexec /bot"
    document = {"spec": {"validations": [{"expression": condition, "script": script}]}}
    lines = plan_module._value(document, 2)
    # A block's value ends in one newline as YAML reads it (clip): the plan shows the text, not the chomping.
    assert yaml.safe_load("\n".join(lines) + "\n") == {"spec": {"validations": [
        {"expression": condition + "\n", "script": script + "\n"}]}}
