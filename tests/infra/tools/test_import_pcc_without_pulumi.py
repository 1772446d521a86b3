"""`python -m stacks.import_pcc` as docs/bring-your-bot.md gives it, `uv run python -m …`, runs with the
project's default packages, which hold no Pulumi SDK (`default-groups` in pyproject.toml: the bot's
and the CLI's): a team converts its pcc-deploy.toml before it has chosen a cloud or installed Pulumi.
The commands it prints that run Python (the secret pipes) run there too."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from tests.support.venvs import venv_without

REPO = Path(__file__).resolve().parents[3]
STARTER = Path(__file__).resolve().parent / "pcc" / "starter"
PULUMI = ("pulumi", "pulumi_aws", "pulumi_gcp", "pulumi_azure_native", "pulumi_kubernetes", "pulumi_docker_build",
          "pulumi_policy")


def documented_command() -> list[str]:
    page = (REPO / "docs" / "bring-your-bot.md").read_text()
    found = re.search(r"^uv run python -m stacks\.import_pcc .*$", page, re.MULTILINE)
    assert found is not None, "docs/bring-your-bot.md no longer gives the import command"
    return shlex.split(found.group(0))


def test_the_documented_command_runs_without_pulumi_and_so_do_the_pipes_it_prints(tmp_path: Path) -> None:
    python = str(venv_without(tmp_path / "venv", *PULUMI))
    words = documented_command()
    assert words[:3] == ["uv", "run", "python"], words  # `uv run` of the default groups: no Pulumi there
    paths = {"path/to/pcc-deploy.toml": str(STARTER / "pcc-deploy.toml"), "path/to/.env": str(STARTER / ".env")}
    command = [python, *(paths.get(word, word) for word in words[3:])]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pulumi config set reserveMinIdle 1" in done.stdout, done.stdout
    pipes = [line.split(" | ")[0] for line in done.stdout.splitlines() if " | pulumi config set --secret" in line]
    assert pipes, done.stdout
    producer = shlex.split(pipes[0])
    assert producer[:3] == ["uv", "run", "python"], producer
    value = subprocess.run([python, *producer[3:]], cwd=REPO, capture_output=True, text=True, timeout=120,
                           check=False)
    assert value.returncode == 0 and value.stdout.startswith("SENTINEL-"), value.stderr[-2000:]
