"""`python -m dispatcher.serving.config_command … --stack NAME` and `voicefleet config … --stack NAME`: the
dispatcher's check on the environment a stack gives its dispatcher, run as its own process (the
dispatcher imports nothing of stacks/), with the exit codes the command documents."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from voicefleet.config_command import config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no kept answer (stacks/tools/config_cache.py) and leaves the user's cache alone."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _module(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher.serving.config_command", *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_dispatchers_command_checks_a_stack() -> None:
    """k8s-dev holds no secret: its environment is good, and each secret its first `up` needs is named (beside
    the note of what its bots need of the cluster's CPU)."""
    done = _module("check", "--stack", "k8s-dev")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if not line.startswith("k8s-dev: note: concurrency ceiling")]
    assert lines and all(" is not set in stacks/Pulumi.k8s-dev.yaml" in line for line in lines), lines


def test_an_unknown_stack_key_is_exit_1_and_one_line_naming_it() -> None:
    done = _module("check", "--stack", "k8s-dev", "--config", "maxConcurentSessions=5")
    assert done.returncode == 1
    assert [line for line in done.stdout.splitlines() if " is not set in " not in line] == [
        "k8s-dev: Invalid stack configuration: voicefleet:maxConcurentSessions is no stack key: did you mean "
        "maxConcurrentSessions?"]


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


SECRET_VALUE = "leaked-0123456789abcdef"


def _recording(monkeypatch: pytest.MonkeyPatch, module: object) -> list[list[str]]:
    """Every command line `module` starts, each process then run for real."""
    started: list[list[str]] = []
    real = subprocess.run

    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        started.append(list(args))
        return real(args, **kwargs)

    monkeypatch.setattr(module, "subprocess", SimpleNamespace(run=run, TimeoutExpired=subprocess.TimeoutExpired))
    return started


def test_a_config_value_never_reaches_the_stack_tools_command_line(monkeypatch: pytest.MonkeyPatch,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    """The dispatcher's hop: a mistaken secret is refused in one line, its value never on a command line."""
    from dispatcher.serving import config_command

    started = _recording(monkeypatch, config_command)
    code = config_command.stack_check(["check", "--stack", "k8s-dev", "--config", f"dailyApiKey={SECRET_VALUE}"],
                                      stdin=io.StringIO())
    out = capfd.readouterr().out
    assert code == 1 and "pulumi config set --secret dailyApiKey" in out and SECRET_VALUE not in out, out
    assert len(started) == 1 and not any(SECRET_VALUE in arg for arg in started[0]), started


def test_the_cli_passes_config_values_on_stdin(monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    """The CLI's hop: `voicefleet config … --config` hands the module the items on stdin."""
    from voicefleet import config_command as cli_module

    started = _recording(monkeypatch, cli_module)
    result = CliRunner().invoke(config, ["explain", "MAX_CONCURRENT_SESSIONS", "--stack", "aws-dev",
                                         "--config", "maxConcurrentSessions=301"])
    assert result.exit_code == 0
    assert "value: 301 (from the stack key maxConcurrentSessions (--config))" in capfd.readouterr().out
    assert len(started) == 1 and not any("301" in arg for arg in started[0]), started


def test_a_checkout_without_the_infra_group_is_told_the_command_that_works(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`uv run voicefleet config check --stack NAME` in a fresh clone (no Pulumi SDK): the command that
    works, not `No module named 'pulumi'` from the stack tool's traceback."""
    import importlib.util

    from dispatcher.serving import config_command

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pulumi" else real(name, *a))
    started = _recording(monkeypatch, config_command)
    assert config_command.stack_check(["check", "--stack", "aws-prod"], stdin=io.StringIO()) == 2
    said = capsys.readouterr()
    assert "uv run --group infra voicefleet config check --stack aws-prod" in said.err, said
    assert "Traceback" not in said.err + said.out and started == []
