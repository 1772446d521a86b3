"""`python -m dispatcher.serving.config_command … --stack NAME` and `voicefleet config … --stack NAME`: the
dispatcher's check on the environment a stack gives its dispatcher, run as its own process (the
dispatcher imports nothing of stacks/), with the exit codes the command documents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cli.config_command import config

ROOT = Path(__file__).resolve().parents[2]


def _module(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher.serving.config_command", *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_dispatchers_command_checks_a_stack() -> None:
    done = _module("check", "--stack", "k8s-dev")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("k8s-dev: configuration good")


def test_an_unknown_stack_key_is_exit_1_and_one_line_naming_it() -> None:
    done = _module("check", "--stack", "k8s-dev", "--config", "maxConcurentSessions=5")
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["k8s-dev: Invalid stack configuration: voicefleet:maxConcurentSessions is no "
                                        "stack key: did you mean maxConcurrentSessions?"]


def test_the_cli_passes_the_stack_on() -> None:
    runner = CliRunner()
    result = runner.invoke(config, ["check", "--stack", "k8s-dev", "--config", "maxConcurrentSessions=0"])
    assert result.exit_code == 1
    result = runner.invoke(config, ["explain", "PORT", "--stack", "k8s-dev"])
    assert result.exit_code == 0


def test_a_stack_key_without_a_stack_is_a_usage_error() -> None:
    result = CliRunner().invoke(config, ["diff", "--config", "maxConcurrentSessions=5"])
    assert result.exit_code == 2
    assert "--config needs --stack" in result.output
