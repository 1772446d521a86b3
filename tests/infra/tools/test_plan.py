"""The offline plan of every example stack matches its committed snapshot.

A change to the program or to stacks/Pulumi.<stack>.yaml shows up here as a text diff. When the
change is intended, refresh the snapshots and commit them with it:

    uv run --project infra python -m stacks.plan aws-dev aws-prod gcp-dev gcp-prod --write
"""

from __future__ import annotations

import pytest

from stacks.tools import plan as plan_module
from stacks.tools.paths import SNAPSHOTS, stack_names
from stacks.tools.plan import diff, main, plan, stack_config

STACKS = stack_names()


def test_every_example_stack_has_a_snapshot() -> None:
    assert STACKS == ["aws-dev", "aws-prod", "azure-dev", "azure-prod", "gcp-dev", "gcp-prod", "global-aws",
                      "global-gcp", "k8s-dev", "k8s-sandbox-dev"]
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.txt")) == STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_plan_matches_snapshot(stack: str) -> None:
    expected = (SNAPSHOTS / f"{stack}.txt").read_text()
    actual = plan(stack)
    assert actual == expected, (
        f"plan of {stack} changed; review the diff, then refresh with "
        f"`uv run --project infra python -m stacks.plan {stack} --write`")


def test_plan_shows_secrets_only_as_placeholders() -> None:
    text = plan("aws-dev")
    assert "[secret]" in text and "placeholder-dailyApiKey" not in text


def test_secret_keys_missing_from_a_stack_file_get_secret_placeholders() -> None:
    config, secret_keys = stack_config("gcp-prod")
    assert {"voicefleet:dailyApiKey", "voicefleet:dispatcherApiKeys"} <= set(secret_keys)
    assert config["voicefleet:cloud"] == "gcp" and config["voicefleet:profile"] == "prod"


def test_diff_mode_shows_a_changed_input_as_a_one_line_change() -> None:
    before = (SNAPSHOTS / "aws-dev.txt").read_text()
    after = before.replace("retentionInDays: 7", "retentionInDays: 14", 1)
    changes = diff("aws-dev", before, after, "HEAD")
    assert changes.startswith("--- aws-dev @ HEAD\n+++ aws-dev (this tree)\n")
    assert [line for line in changes.splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        "-  retentionInDays: 7", "+  retentionInDays: 14"]
    assert diff("aws-dev", before, before, "HEAD") == ""


def test_diff_mode_exits_1_when_the_plan_moved_from_the_committed_snapshot(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    committed = (SNAPSHOTS / "gcp-dev.txt").read_text()
    monkeypatch.setattr(plan_module, "committed_snapshot", lambda stack, ref: committed.replace("e2-small", "e2-micro"))
    assert main(["gcp-dev", "--diff", "main"]) == 1
    assert "-  machineType: e2-micro\n+  machineType: e2-small" in capsys.readouterr().out


def test_a_stack_that_breaks_a_preflight_rule_gets_no_plan(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plan_module, "violations",
                        lambda stack, regs, *_: ["aws:lb/loadBalancer:LoadBalancer x: too long"])
    assert main(["aws-dev"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "aws-dev: aws:lb/loadBalancer:LoadBalancer x: too long" in captured.err


def test_an_unknown_stack_is_one_line_naming_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    from stacks.tools import plan

    with pytest.raises(SystemExit) as exited:
        plan.main(["aws-staging"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m stacks.plan: unknown stack(s) aws-staging; known: "
        "aws-dev, aws-prod, azure-dev, azure-prod, gcp-dev, gcp-prod, global-aws, global-gcp, k8s-dev, "
        "k8s-sandbox-dev"]


def test_a_bad_stack_value_is_one_line_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stacks.tools import plan

    config, secret_keys = plan.stack_config("aws-dev")
    config["voicefleet:maxSessionSeconds"] = "lots"
    monkeypatch.setattr(plan, "stack_config", lambda stack: (config, secret_keys))
    assert plan.main(["aws-dev"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "aws-dev: Invalid stack configuration: voicefleet:maxSessionSeconds must be a whole number (got 'lots')"]


def test_the_plan_names_each_value_it_filled_with_a_placeholder_and_the_command_the_first_up_needs(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The example stacks hold no secrets: the plan passes on placeholders, and says what `up` still needs
    (only what the stack cannot make itself)."""
    assert main(["aws-prod", "--config", "certificateArn=arn:aws:acm:us-east-1:123456789012:certificate/mine"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "planned with a placeholder" in line]
    needed = {line.split(": ", 1)[1].split(" ", 1)[0]: line.rsplit("needs it: ", 1)[1] for line in notes}
    assert needed == {
        "dailyApiKey": "`pulumi config set --secret dailyApiKey -s aws-prod` (it prompts for the value)",
        "dispatcherApiKeys": "`pulumi config set --secret dispatcherApiKeys -s aws-prod` (it prompts for the value)",
        "dispatcherAdminKeys":
            "`pulumi config set --secret dispatcherAdminKeys -s aws-prod` (it prompts for the value)",
        # the channel token, the store's password and message secret, the TURN secret: the stack's own
        # a plain value keeps the stack file header's example; the one --config gave is not listed
        "dispatcherDomain": "`pulumi config set dispatcherDomain <voice.example.com> -s aws-prod`",
    }, notes
    assert notes[0].startswith("# aws-prod note: dailyApiKey is not set in stacks/Pulumi.aws-prod.yaml"), notes


def test_the_plan_shows_the_recording_bucket_and_one_lifecycle_rule_per_retention(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A key name rule and a release rule: two day counts, two expiration rules (and the noncurrent versions'
    expiry and the uploads' abort)."""
    assert main(["aws-dev", "--config", "recording=on", "--config",
                 "recordingRules=key:acme audio=consent days=30; release:v7 days=7"]) == 0
    shown = capsys.readouterr().out
    assert "aws:s3/bucket:Bucket  voicefleet-aws-dev-recordings [retain on delete]" in shown
    lifecycle = shown.split("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")[1].split("\n\n")[0]
    assert [line.strip() for line in lifecycle.splitlines() if line.strip().startswith("id:")] == [
        "id: expire-retain-7d", "id: expire-retain-30d", "id: expire-noncurrent-versions",
        "id: abort-incomplete-uploads"]
    assert "prefix: recordings/retain-7d/" in lifecycle and "prefix: recordings/retain-30d/" in lifecycle
