"""A bot whose bot.py builds Pipecat's SmallWebRTC transport only (tests/fixtures/projects/webrtc_video,
whose own module video.py imports cv2), as a user meets it in `python -m stacks.plan`: a stack without
a relay is told to add one (a phone credential would serve it nothing), the plan never says a path is
served that the bot cannot serve, a TURN stack builds and sizes its SmallWebRTC image only, and the
plan neither advises nor accepts leaving out the OpenCV the bot imports.

The first refusal runs the plan as its user does (`python -m stacks.plan`: exit 2, one line, nothing on
stdout); the others are the same refusal of the settings' read the plan runs first
(tests/infra/settings_read.py), without an interpreter and a replay of the stack file each."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from images.bot_project import read
from images.size_prediction import predict_image
from stacks.config.settings import SettingsError
from stacks.tools.mocks import unwrap
from stacks.tools.paths import REPOSITORY
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.gcp.test_stack import dispatcher_container
from tests.infra.helpers import container
from tests.infra.settings_read import refusal

FIXTURE = REPOSITORY / "tests" / "fixtures" / "projects" / "webrtc_video"
PHONE = {**SECRETS, "voicefleet:phoneTokenSecret": "SENTINEL-phone-0123456789abcdef0123456789abcdef"}
TURN = {"turn": "external", "turnUrls": "turn:turn.example.com:3478"}
WITH_TURN = {**SECRETS, **CHANNEL_SECRETS, "voicefleet:turnSharedSecret": "SENTINEL-turn-0123456789"}


def plan(stack: str, *config: str) -> subprocess.CompletedProcess[str]:
    flags = [flag for item in config for flag in ("--config", item)]
    return subprocess.run([sys.executable, "-m", "stacks.plan", stack, *flags], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=300, check=False)


def build_images(project: Path, budget: str = "") -> subprocess.CompletedProcess[str]:
    """What images/ci/build.sh would build for `project`, each with its closure budget (`--images`)."""
    return subprocess.run([str(REPOSITORY / "images" / "ci" / "build.sh"), "--images"], cwd=REPOSITORY,
                          env={**os.environ, "BOT_PROJECT": str(project), "BOT_IMAGE_BUDGET_MB": budget,
                               "BOT_IMAGES_ONLY": "1"},
                          capture_output=True, text=True, timeout=300, check=False)


def budgets(printed: str) -> dict[str, float | None]:
    """build.sh --images's `IMAGE MB` lines (after the bot project's own lines); `none`: a team's
    project with no budget set, which the build holds to nothing (images/budgets.py)."""
    return {match[1]: None if match[2] == "none" else float(match[2]) for line in printed.splitlines()
            if (match := re.fullmatch(r"([a-z-]+) (\d+(?:\.\d+)?|none)", line))}


def test_a_stack_without_a_relay_advises_a_turn_relay_not_a_phone_credential() -> None:
    result = plan("aws-dev", f"botProject={FIXTURE}")
    assert result.returncode == 2 and result.stdout == "", result.stderr
    (line,) = result.stderr.splitlines()
    assert "builds Pipecat's webrtc transport, not daily" in line, line
    assert "a TURN relay: `pulumi config set turn managed`" in line and "turnSharedSecret" in line, line
    assert "certificateArn" in line, line  # aws-dev is plain HTTP: the channel a relay needs wants HTTPS
    assert "phoneTokenSecret" not in line and "twilioAuthToken" not in line, line


def test_a_phone_credential_serves_a_webrtc_only_bot_nothing_and_is_refused(stack: StackRunner) -> None:
    """Following the old advice (phoneTokenSecret) used to pass and say "its phone calls are served"."""
    with pytest.raises(SettingsError) as refused:
        stack("aws", secrets=PHONE, botProject=str(FIXTURE))
    message = str(refused.value)
    assert "offers only Daily web sessions (POST /start) and phone calls" in message, message
    assert "a TURN relay" in message and "are served" not in message, message


def test_a_relay_stack_states_only_what_the_bot_serves(stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    stack("aws", secrets={**WITH_TURN, **PHONE}, botProject=str(FIXTURE), botImageBudgetMb="900", **TURN,
          **CHANNEL["aws"])
    (line,) = [line for line in warned if "its bot.py builds" in line]
    assert line.endswith("this stack's phone calls will fail; its SmallWebRTC web sessions (over the TURN relay) "
                         "are served"), line  # and Daily's are not offered at all (below)


def test_a_relay_stack_builds_and_sizes_only_the_smallwebrtc_image_of_a_webrtc_only_bot(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    run = stack("aws", secrets=WITH_TURN, botProject=str(FIXTURE), botImageBudgetMb="900", **TURN, **CHANNEL["aws"])
    built = sorted((unwrap(r.inputs)["dockerfile"]["location"], unwrap(r.inputs)["target"])
                   for r in run.of_type("docker-build:index:Image"))
    assert built == [("../images/bot.Dockerfile", "runtime-webrtc"), ("../images/dispatcher.Dockerfile", "runtime")]
    sized = [line.split(" image's packages")[0].rsplit(" ", 1)[-1] for line in said if "image's packages" in line]
    assert sized == ["bot-webrtc"], said
    assert any("offers SmallWebRTC web sessions only (TRANSPORTS=webrtc)" in line for line in said), said
    environment = {item["name"]: item["value"] for item in container(run, "-dispatcher")["environment"]}
    assert (environment["TRANSPORTS"], environment["DEFAULT_TRANSPORT"]) == ("webrtc", "webrtc")  # Daily: refused
    # The runtime a Daily or WebSocket session would launch runs the one image the bot has, pulled from its repository.
    assert container(run, "-bot")["image"] == container(run, "-bot-webrtc")["image"]
    pulls = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-bot-execution")]
    (policy,) = [json.loads(unwrap(r.inputs["policy"])) for r in pulls]
    (pull,) = [s for s in policy["Statement"] if s.get("Sid") == "PullImage"]
    assert str(pull["Resource"]).endswith("-bot-webrtc"), pull


def test_on_gcp_too_a_webrtc_only_bot_gets_its_smallwebrtc_image_alone_and_no_daily_sessions(
        stack: StackRunner) -> None:
    run = stack("gcp", secrets=WITH_TURN, botProject=str(FIXTURE), botImageBudgetMb="900", **TURN, **CHANNEL["gcp"])
    assert sorted((unwrap(r.inputs)["dockerfile"]["location"], unwrap(r.inputs)["target"])
                  for r in run.of_type("docker-build:index:Image")) == [
        ("../images/bot.Dockerfile", "runtime-webrtc"), ("../images/dispatcher.Dockerfile", "runtime")]
    environment = {e["name"]: e.get("value") for e in dispatcher_container(run)["envs"]}
    assert (environment["TRANSPORTS"], environment["DEFAULT_TRANSPORT"]) == ("webrtc", "webrtc")


def test_the_image_build_builds_only_the_smallwebrtc_image_of_a_webrtc_only_bot() -> None:
    result = build_images(FIXTURE)
    assert result.returncode == 0, result.stderr
    assert budgets(result.stdout) == {"bot-webrtc": None}, result.stdout


def test_the_slimming_never_advises_leaving_out_what_the_bot_imports() -> None:
    project = read(FIXTURE)
    webrtc = predict_image(project, "bot-webrtc")
    assert "opencv-python-headless" in dict(webrtc.largest[:5])  # big enough to be advised about
    line = refusal("aws-prod", {"botProject": str(FIXTURE), "botImageBudgetMb": "400"})
    assert "opencv-python-headless: kept, the bot imports it (video.py:3: `cv2`)" in line, line
    assert "exclude-packages it if unused" not in line and "incoming video" not in line, line


def test_leaving_out_a_package_the_bot_imports_is_refused_by_the_plan_and_the_build(tmp_path: Path) -> None:
    folder = tmp_path / "webrtc_video"
    shutil.copytree(FIXTURE, folder)
    with (folder / "pyproject.toml").open("a") as pyproject:
        pyproject.write('\n[tool.voicefleet]\nexclude-packages = ["opencv-python-headless"]\n')
    line = refusal("aws-prod", {"botProject": str(folder), "botImageBudgetMb": "900"})
    assert f"leaves out opencv-python-headless, which {folder / 'video.py'}:3 imports (`cv2`)" in line, line
    assert "No module named 'cv2'" in line, line
    built = build_images(folder)
    assert built.returncode == 1 and "leaves out opencv-python-headless" in built.stderr, built.stderr


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_phone_only_bot_on_a_relay_stack_is_told_the_relay_serves_it_nothing_not_to_add_aiortc(
        stack: StackRunner, cloud: str) -> None:
    """aws-prod and gcp-prod run a relay: a phone bot (no SmallWebRTC in bot.py, no aiortc) was told to add
    Pipecat's webrtc extra, which only builds an image of a transport it never runs."""
    twilio = REPOSITORY / "tests" / "fixtures" / "projects" / "twilio_inbound"
    twilio_token = {"voicefleet:twilioAuthToken": "SENTINEL-twilio-0123456789abcdef0123456789abcdef"}
    with pytest.raises(SettingsError) as refused:
        stack(cloud, secrets={**WITH_TURN, **twilio_token}, botProject=str(twilio), botImageBudgetMb="900", **TURN,
              **CHANNEL.get(cloud, {}))
    message = str(refused.value)
    assert "builds Pipecat's websocket transport and no SmallWebRTC one" in message, message
    assert "`pulumi config set turn none`" in message, message
    # and without the relay the same bot is served (its phone calls)
    stack(cloud, secrets={**SECRETS, **twilio_token}, botProject=str(twilio), botImageBudgetMb="900")


def test_a_budget_that_is_no_number_stops_the_image_build_before_it_builds() -> None:
    """It used to reach images/ci/run_image.py after every image was built, and end in a traceback."""
    result = build_images(FIXTURE, budget="700MB")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "OWN_MB must be a number of MB (got '700MB')" in result.stderr and "Traceback" not in result.stderr
    assert not budgets(result.stdout), result.stdout


def test_on_azure_the_relay_advice_names_the_ssh_key_its_managed_relay_also_needs() -> None:
    """Following the advice on Azure used to stop at the next preview: turnSshPublicKey is required."""
    line = refusal("azure-dev", {"botProject": str(FIXTURE)})
    assert "`pulumi config set turnSshPublicKey" in line and "certificateArn" not in line, line
