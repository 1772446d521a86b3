"""A bot whose bot.py builds Pipecat's Daily transport only, in a project that locks aiortc too
(pipecat-examples' Daily bots often lock `pipecat-ai[daily,webrtc]`): a stack with a TURN relay
would build, name and size a SmallWebRTC image (bot-webrtc) for a transport the bot never runs, and
offer SmallWebRTC sessions that fail. It is refused as the same bot without aiortc is: the relay
serves it nothing. Without a relay it is served, and only its Daily image is built and sized."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.mocks import unwrap
from stacks.tools.paths import REPOSITORY
from tests.infra.conftest import CHANNEL, SECRETS, StackRunner
from tests.infra.tools.test_plan_webrtc_only_bot import TURN, WITH_TURN

DAILY_ONLY_BOT = REPOSITORY / "tests" / "bots" / "daily_only.py"


@pytest.fixture
def daily_only_project(tmp_path: Path) -> Path:
    """examples/parrot's project (its lock has aiortc and daily-python) with a Daily-only bot.py."""
    folder = tmp_path / "daily_only"
    shutil.copytree(REPOSITORY / "examples" / "parrot", folder)
    shutil.copyfile(DAILY_ONLY_BOT, folder / "bot.py")
    return folder


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_relay_stack_refuses_a_daily_only_bot_instead_of_building_its_smallwebrtc_image(
        stack: StackRunner, daily_only_project: Path, cloud: str, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    with pytest.raises(SettingsError) as refused:
        stack(cloud, secrets=WITH_TURN, botProject=str(daily_only_project), botImageBudgetMb="900", **TURN,
              **CHANNEL[cloud])
    message = str(refused.value)
    assert "builds Pipecat's daily transport and no SmallWebRTC one" in message, message
    assert "`pulumi config set turn none`" in message and "no aiortc" not in message, message
    assert not [line for line in said if "bot-webrtc image" in line], said  # never sized


def test_without_a_relay_a_daily_only_bot_gets_its_daily_image_alone(
        stack: StackRunner, daily_only_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    run = stack("aws", secrets=SECRETS, botProject=str(daily_only_project), botImageBudgetMb="900")
    built = sorted((unwrap(r.inputs)["dockerfile"]["location"], unwrap(r.inputs)["target"])
                   for r in run.of_type("docker-build:index:Image"))
    assert built == [("../images/bot.Dockerfile", "runtime"), ("../images/dispatcher.Dockerfile", "runtime")], built
    sized = [line.split(" image's packages")[0].rsplit(" ", 1)[-1] for line in said if "image's packages" in line]
    assert sized == ["bot"], said


@pytest.mark.parametrize(("cloud", "named"), [("aws", "bot-webrtc image repository"), ("gcp", "shared secret")])
def test_on_a_protected_stack_the_refusal_names_what_blocks_turning_the_relay_off(
        stack: StackRunner, daily_only_project: Path, cloud: str, named: str) -> None:
    """aws-prod and gcp-prod (`profile: prod`) protect the relay's shared secret and, on AWS, the bot-webrtc
    image repository and log group: `turn none` alone is an `up` that Pulumi refuses, so the way forward says so."""
    with pytest.raises(SettingsError) as refused:
        stack(cloud, secrets=WITH_TURN, botProject=str(daily_only_project), botImageBudgetMb="900", protect="true",
              **TURN, **CHANNEL[cloud])
    message = str(refused.value)
    assert "`pulumi state unprotect" in message and named in message, message
