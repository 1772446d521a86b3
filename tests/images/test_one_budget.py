"""One budget rule for the plan and the image build (images/budgets.py judge): with no budget set both
pass a bot image of any size with the same note; with one set, both refuse over it, naming the stack
key, the build's variable and the number that would pass; and a stack's build (STACK=…) builds and
holds only the images that stack builds. The build's own decision is run through its seam
(`images/ci/build.sh --check-size IMAGE MB`), never a 13-minute build."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from images.budgets import NO_BUDGET, judge
from stacks.tools.paths import REPOSITORY

BUILD = REPOSITORY / "images" / "ci" / "build.sh"


def build_sh(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("STACK", "BOT_PROJECT", "BOT_IMAGE_BUDGET_MB",
                                                               "BOT_IMAGES_ONLY")}
    return subprocess.run([str(BUILD), *args], cwd=REPOSITORY, env={**clean, **env}, capture_output=True,
                          text=True, timeout=300, check=False)


def test_with_no_budget_a_bot_image_of_any_size_passes_with_the_note() -> None:
    judgement = judge("bot", 909.0)
    assert not judgement.refused and judgement.note is not None
    assert "over the 400 MB voicefleet holds its own bot image to" in judgement.note and NO_BUDGET in judgement.note
    assert judge("bot", 300.0).note is None


def test_over_a_set_budget_the_refusal_names_the_key_the_variable_and_the_number_that_passes() -> None:
    judgement = judge("bot-webrtc", 977.5, 910)
    assert judgement.refused and judgement.note is not None
    told = re.search(r"`pulumi config set voicefleet:botImageBudgetMb (\d+)` \(the image build: "
                     r"BOT_IMAGE_BUDGET_MB=(\d+)\)", judgement.note)
    assert told is not None and told[1] == told[2], judgement.note
    assert not judge("bot-webrtc", 977.5, int(told[1])).refused
    assert judge("dispatcher", 81.0).refused  # voicefleet's own image keeps its budget


def test_the_builds_size_check_passes_a_teams_unbudgeted_909_mb_bot_with_the_plans_note() -> None:
    result = build_sh("--check-size", "bot", "909", BOT_PROJECT="tests/fixtures/projects/twilio_inbound")
    assert result.returncode == 0, result.stderr
    assert f"note: {judge('bot', 909.0).note}" in result.stdout.splitlines()


def test_ci_s_build_of_voicefleets_own_parrot_still_holds_it_to_voicefleets_budget() -> None:
    """.ci/run builds the parrot with no variable set: a parrot grown past 400 MB must fail there."""
    listed = build_sh("--images")
    assert listed.returncode == 0, listed.stderr
    assert {"bot 400", "dispatcher 80"} <= set(listed.stdout.splitlines())
    assert build_sh("--check-size", "bot", "409").returncode == 1


def test_the_builds_size_check_refuses_over_its_budget_naming_the_way_out() -> None:
    """That the number named passes is judge's (the refusal test above), which the build runs as it
    runs it here; the build passing what judge passes: the unbudgeted 909 MB bot's test."""
    result = build_sh("--check-size", "bot", "909", BOT_IMAGE_BUDGET_MB="500")
    assert result.returncode == 1
    assert "`pulumi config set voicefleet:botImageBudgetMb 909` (the image build: BOT_IMAGE_BUDGET_MB=909)" in \
        result.stderr


@pytest.mark.parametrize(("stack", "expected"), [
    ("aws-dev", {"dispatcher": "80", "bot": "none"}),  # no relay, no budget: no SmallWebRTC image, none held
    ("aws-prod", {"dispatcher": "80", "bot": "400", "bot-webrtc": "450"}),  # its relay and its botImageBudgetMb
])
def test_a_stacks_build_holds_exactly_the_images_that_stack_builds_to_its_budget(
        stack: str, expected: dict[str, str]) -> None:
    result = build_sh("--images", STACK=stack)
    assert result.returncode == 0, result.stderr
    assert dict(line.split(" ", 1) for line in result.stdout.splitlines() if not line.startswith(("==", "bot project"))
                ) == expected


def test_a_stacks_build_refuses_a_second_source_of_its_project_or_budget() -> None:
    result = build_sh("--images", STACK="aws-dev", BOT_IMAGE_BUDGET_MB="910")
    assert result.returncode == 2 and "takes BOT_PROJECT and BOT_IMAGE_BUDGET_MB from stacks/Pulumi.aws-dev.yaml" in \
        result.stderr


def test_the_size_check_of_an_image_the_stack_does_not_build_is_refused() -> None:
    result = build_sh("--check-size", "bot-webrtc", "977.5", STACK="aws-dev")
    assert result.returncode == 2 and "this build's images: dispatcher bot" in result.stderr
