"""The shared program runs (tests/infra/program_cache.py) hide nothing a fresh run would show."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.gcp.observability import NO_POLICIES
from tests.images.test_bot_project import project
from tests.infra.config.test_bot import images
from tests.infra.conftest import StackRunner


def test_a_test_listening_to_the_programs_log_hears_it_though_the_same_stack_ran_before(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    stack("gcp")
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    stack("gcp")
    assert NO_POLICIES in warned


def test_each_test_gets_its_own_copy_of_a_shared_run(stack: StackRunner) -> None:
    first = stack("aws")
    first.registrations[0].inputs.clear()
    first.registrations.clear()
    second = stack("aws")
    assert second.registrations and all(r.inputs for r in second.registrations if r.custom)


def test_a_bot_project_edited_between_two_runs_is_run_again(stack: StackRunner, tmp_path: Path) -> None:
    folder = project(tmp_path)
    before = images(stack("aws", botProject=str(folder)))
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.voicefleet]\nexclude-packages = ["numba"]\n')
    after = images(stack("aws", botProject=str(folder)))
    assert after["bot"]["buildArgs"].get("BOT_EXCLUDE_PACKAGES") == "numba"
    assert before["bot"]["buildArgs"].get("BOT_EXCLUDE_PACKAGES", "") == ""
