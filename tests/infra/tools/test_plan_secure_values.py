"""A stack whose secrets are set as the README says (`pulumi config set --secret …`) passes its own
offline checks: the plan and `voicefleet config check --stack` see each `secure:` value as a stand-in
of its own ciphertext (stacks/config/masked.py), so two secrets never look alike, and a check of a
secret's length or shape waits for `pulumi up`, which reads the value, instead of refusing."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.tools import config_check, plan
from tests.infra.tools.secure_stack import ciphertext, secure_lines, write_stack

# Every secret the aws-prod header documents, each its own ciphertext, as `pulumi config set --secret` writes them.
AWS_PROD_SECRETS = {key: ciphertext(key) for key in (
    "dailyApiKey", "dispatcherApiKeys", "dispatcherAdminKeys", "turnSharedSecret", "botChannelToken",
    "storePassword", "storeMessageSecret")}
AWS_PROD_PLAIN = {"certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f",
                  "dispatcherDomain": "voice.example.com"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def aws_prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The shipped aws-prod with its documented secrets set, and a bot key set with --secret --path."""
    return write_stack(tmp_path / "stacks", monkeypatch, "aws-prod",
                       secure_lines(AWS_PROD_SECRETS, {"botSecrets": ["DEEPGRAM_API_KEY"]}), AWS_PROD_PLAIN)


@pytest.fixture(autouse=True)
def _stack_folder(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()


def test_the_plan_passes_aws_prod_with_every_documented_secret_set(aws_prod: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main([aws_prod]) == 0, capsys.readouterr().err
    said = capsys.readouterr()
    assert "v1:" not in said.out + said.err  # no ciphertext in the plan or its notes
    # What waits for `pulumi up` says so, naming the key (never a refusal).
    assert "voicefleet:botChannelToken is encrypted in the stack file: its length and shape are checked by " \
           "`pulumi up`" in said.err
    assert "not set in" not in said.err  # no placeholder: every documented value is set


def test_config_check_calls_aws_prod_with_every_documented_secret_set_good(
        aws_prod: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_check.main(["check", "--stack", aws_prod]) == 0, capsys.readouterr().out
    assert f"{aws_prod}: configuration good" in capsys.readouterr().out


def test_two_secrets_of_one_ciphertext_are_still_the_same_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A ciphertext copied from one key to the other is one value for certain: still refused."""
    copied = {**AWS_PROD_SECRETS, "dispatcherAdminKeys": AWS_PROD_SECRETS["dispatcherApiKeys"]}
    stack = write_stack(tmp_path / "stacks", monkeypatch, "aws-prod", secure_lines(copied), AWS_PROD_PLAIN)
    assert plan.main([stack]) == 2
    assert "dispatcherAdminKeys shares a key with voicefleet:dispatcherApiKeys" in capsys.readouterr().err
    # config check names it once, and not also as missing (the search for further faults left it out).
    assert config_check.main(["check", "--stack", stack]) == 1
    said = capsys.readouterr().out
    assert "dispatcherAdminKeys shares a key with voicefleet:dispatcherApiKeys" in said
    assert "is required" not in said, said


@pytest.mark.parametrize("stack", ["aws-dev", "gcp-dev", "azure-dev"])
def test_a_dev_stack_with_its_secrets_set_passes_the_plan(stack: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    secrets = {key: ciphertext(f"{stack}.{key}") for key in ("dailyApiKey", "dispatcherApiKeys",
                                                             "dispatcherAdminKeys")}
    write_stack(tmp_path / "stacks", monkeypatch, stack, secure_lines(secrets))
    assert plan.main([stack]) == 0, capsys.readouterr().err
