"""The user's bot in a stack, under Pulumi mocks: `botProject` is the bot images' build context
`bot-project` (checked at preview), and `botSecrets` is a named set of service keys that reaches the
bot only by reference (ECS `secrets` valueFrom ARNs; GCE Secret Manager version names read at boot)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from images.budgets import judge
from images.size_prediction import predict
from stacks.config.settings import SettingsError
from stacks.shared import contract
from stacks.tools.mocks import Run, is_secret, unwrap
from tests.images.examples_shaped import DAILY_IMPORT_LINE, examples_shaped_project
from tests.images.test_bot_project import ROOT, project
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container

USER_SECRETS = {"ELEVENLABS_API_KEY": "SENTINEL-elevenlabs-1f2e", "TWILIO_AUTH_TOKEN": "SENTINEL-twilio-9a8b"}
WITH_USER_SECRETS = {**SECRETS, "voicefleet:botSecrets": json.dumps(USER_SECRETS)}
PARROT_LEAVES_OUT = {"BOT_DAILY_LEAVES_OUT": "aiortc av aioice pylibsrtp", "BOT_WEBRTC_LEAVES_OUT": "daily-python"}
WITH_TURN = {**SECRETS, **CHANNEL_SECRETS, "voicefleet:turnSharedSecret": "SENTINEL-turn-0123456789"}


def images(run: Run) -> dict[str, dict[str, object]]:
    return {r.name.rsplit("-", 1)[-1] if not r.name.endswith("bot-webrtc") else "bot-webrtc": unwrap(r.inputs)
            for r in run.of_type("docker-build:index:Image")}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_bot_image_is_built_from_the_parrot_example_by_default(stack: StackRunner, cloud: str) -> None:
    built = images(stack(cloud))
    assert built["bot"]["context"] == {"location": "..", "named": {"bot-project": {"location": "../examples/parrot"}}}
    assert built["bot"]["buildArgs"] == {"BOT_EXCLUDE_PACKAGES": "llvmlite numba opencv-python-headless resampy",
                                         **PARROT_LEAVES_OUT}
    assert built["dispatcher"]["context"] == {"location": ".."}  # the dispatcher has no bot project
    assert not built["dispatcher"].get("buildArgs")


def test_bot_project_names_the_folder_both_bot_images_are_built_from(stack: StackRunner, tmp_path: Path) -> None:
    folder = project(tmp_path, pyproject='\n[tool.voicefleet]\nexclude-packages = ["numba"]\n',
                     extra=(("aiortc", "1.14.0"),))
    run = stack("aws", secrets=WITH_TURN,
                botProject=str(folder), turn="external", turnUrls="turn:turn.example.com:3478", **CHANNEL["aws"])
    built = images(run)
    for role in ("bot", "bot-webrtc"):
        assert built[role]["context"]["named"] == {"bot-project": {"location": str(folder)}}  # type: ignore[index]
        assert built[role]["buildArgs"] == {"BOT_EXCLUDE_PACKAGES": "numba", **PARROT_LEAVES_OUT}


def test_a_bot_that_imports_daily_at_the_top_and_offers_webrtc_keeps_daily_in_its_webrtc_image(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pipecat-examples' bots that offer both import `DailyParams` at module level: the SmallWebRTC image
    must keep daily-python for them, and the plan sizes that image with it and says why."""
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    folder = examples_shaped_project(tmp_path)
    built = images(stack("aws", secrets=WITH_TURN, botProject=str(folder), botImageBudgetMb="900",
                         turn="external", turnUrls="turn:turn.example.com:3478", **CHANNEL["aws"]))
    kept = {**PARROT_LEAVES_OUT, "BOT_WEBRTC_LEAVES_OUT": ""}
    assert built["bot"]["buildArgs"] == built["bot-webrtc"]["buildArgs"] == {
        "BOT_EXCLUDE_PACKAGES": "llvmlite numba opencv-python-headless resampy", **kept}
    (line,) = [line for line in said if "the bot-webrtc image's packages" in line]
    with_daily = predict(folder / "uv.lock", leave_out=("llvmlite", "numba", "opencv-python-headless", "resampy"))
    assert f"predicted at {with_daily.installed_mb:.0f} MB installed, keeping daily-python" in line, line
    assert f"bot.py:{DAILY_IMPORT_LINE} imports Pipecat's daily transport at module level" in line, line


@pytest.mark.parametrize("version", ["1.13.0", "2.0.0"])
def test_a_project_locking_an_unsupported_pipecat_fails_the_preview_naming_key_file_and_version(
        stack: StackRunner, tmp_path: Path, version: str) -> None:
    folder = project(tmp_path, pipecat=version)
    with pytest.raises(SettingsError) as caught:
        stack("aws", botProject=str(folder))
    message = str(caught.value)
    assert "voicefleet:botProject" in message and f"pipecat-ai {version}" in message
    assert str(folder / "uv.lock") in message and ">=1.14.0,<2" in message


def test_a_bot_project_that_is_not_one_fails_the_preview(stack: StackRunner, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="voicefleet:botProject .* has no bot.py"):
        stack("gcp", botProject=str(project(tmp_path, bot=False)))


def test_a_bot_py_that_defines_no_bot_fails_the_preview_naming_the_contract(
        stack: StackRunner, tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("async def main(input_device, output_device):\n    pass\n")  # no shape the host runs
    with pytest.raises(SettingsError, match=r"voicefleet:botProject .*bot\.py defines no `bot`.*: the bot host calls "
                                            r"`async def bot\(runner_args\)`"):
        stack("aws", botProject=str(folder))


def test_named_bot_secrets_reach_the_ecs_bot_as_arns_of_this_stacks_versions(stack: StackRunner) -> None:
    run = stack("aws", secrets=WITH_USER_SECRETS)
    references = {s["name"]: s["valueFrom"] for s in container(run, "-bot")["secrets"]}
    assert sorted(references) == sorted(USER_SECRETS)
    for env in USER_SECRETS:
        slug = env.lower().replace("_", "-")
        # this stack's secret (its name carries a generated tail), pinned to the version it wrote
        assert re.fullmatch(rf"arn:aws:secretsmanager:eu-west-1:123456789012:secret:/voicefleet/aws-test/{slug}-"
                            r"\S+-AbCdEf:::v-[0-9a-f]{8}", references[env]), references[env]
    definition = container(run, "-bot")
    assert not any(e["name"] in USER_SECRETS for e in definition.get("environment", []))
    dispatcher = container(run, "-dispatcher")
    assert not set(USER_SECRETS) & {s["name"] for s in dispatcher.get("secrets", [])}  # the bot's, not the dispatcher's


def test_named_bot_secrets_are_readable_only_by_the_bot_execution_role(stack: StackRunner) -> None:
    run = stack("aws", secrets=WITH_USER_SECRETS)
    grants = [unwrap(r.inputs) for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if "-read-" in r.name]
    readers = {json.dumps(g["policy"]): g["role"] for g in grants}
    holding = [role for policy, role in readers.items() if "elevenlabs-api-key" in policy]
    assert holding == ["voicefleet-aws-test-bot-execution-id"]


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_named_bot_secret_values_reach_only_the_secret_store_and_stay_secret(stack: StackRunner, cloud: str) -> None:
    run = stack(cloud, secrets=WITH_USER_SECRETS)
    stores = {"aws:secretsmanager/secretVersion:SecretVersion", "gcp:secretmanager/secretVersion:SecretVersion"}
    field = "secretString" if cloud == "aws" else "secretData"
    stored = [r for r in run.registrations if r.type in stores
              and any(v in json.dumps(unwrap(r.inputs)) for v in USER_SECRETS.values())]
    assert len(stored) == len(USER_SECRETS) and all(is_secret(r.inputs[field]) for r in stored)
    elsewhere = [r.name for r in run.registrations if r.type not in stores
                 and any(v in json.dumps(unwrap(r.inputs)) for v in USER_SECRETS.values())]
    assert elsewhere == []


def test_named_bot_secrets_reach_gce_bots_as_version_names_read_at_boot(stack: StackRunner) -> None:
    run = stack("gcp", secrets=WITH_USER_SECRETS)
    (template,) = run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    refs = template.inputs["metadata"][contract.GCE_SECRETS_METADATA_KEY]
    assert refs == ",".join(f"{env}=projects/vf-test/secrets/voicefleet-gcp-test-{env.lower().replace('_', '-')}"
                            "/versions/1" for env in sorted(USER_SECRETS))
    bot = "serviceAccount:vf-gcp-test-bot@vf-test.iam.gserviceaccount.com"
    members = run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    readable = [r for r in members if r.inputs["member"] == bot]
    assert len(readable) == len(USER_SECRETS)


def test_bot_secrets_stored_in_plain_text_are_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:botSecrets is stored in plain text"):
        stack("aws", botSecrets=json.dumps(USER_SECRETS))


@pytest.mark.parametrize(("name", "problem"), [
    ("DAILY_API_KEY", "set by voicefleet itself"), ("BOT_CHANNEL_TOKEN", "set by voicefleet itself"),
    ("TURN_SHARED_SECRET", "set by voicefleet itself"), ("BOT_TURN_TRANSPORT", "set by voicefleet itself"),
    ("lower_case", "not an environment variable name"),
])
def test_bot_secret_names_that_would_collide_or_cannot_be_variables_are_refused(
        stack: StackRunner, name: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        stack("aws", secrets={**SECRETS, "voicefleet:botSecrets": json.dumps({name: "SENTINEL-x"})})


def test_a_bot_secret_also_set_by_its_single_key_is_refused(stack: StackRunner) -> None:
    keys = {"voicefleet:deepgramApiKey": "SENTINEL-dg", "voicefleet:cartesiaApiKey": "SENTINEL-ca",
            "voicefleet:openaiApiKey": "SENTINEL-oa"}
    both = {**SECRETS, **keys, "voicefleet:botSecrets": json.dumps({"DEEPGRAM_API_KEY": "SENTINEL-dg2"})}
    with pytest.raises(SettingsError, match="DEEPGRAM_API_KEY, which voicefleet:deepgramApiKey sets too"):
        stack("aws", secrets=both)


def test_the_single_keys_and_the_named_set_add_up(stack: StackRunner) -> None:
    keys = {"voicefleet:deepgramApiKey": "SENTINEL-dg", "voicefleet:cartesiaApiKey": "SENTINEL-ca",
            "voicefleet:openaiApiKey": "SENTINEL-oa"}
    run = stack("aws", secrets={**WITH_USER_SECRETS, **keys})
    assert sorted(s["name"] for s in container(run, "-bot")["secrets"]) == sorted(
        [*USER_SECRETS, "CARTESIA_API_KEY", "DEEPGRAM_API_KEY", "OPENAI_API_KEY"])


@pytest.mark.parametrize("credential", ["twilioAuthToken", "phoneTokenSecret"])
def test_a_carriers_credential_with_a_project_that_cannot_take_calls_fails_the_preview(
        stack: StackRunner, tmp_path: Path, credential: str) -> None:
    phone = {**SECRETS, f"voicefleet:{credential}": "SENTINEL-phone-0123456789abcdef0123456789abcdef"}
    with pytest.raises(SettingsError, match="voicefleet:botProject .* has no fastapi"):
        stack("aws", secrets=phone, botProject=str(project(tmp_path / "daily-only")))
    able = project(tmp_path / "with-websocket", extra=(("fastapi", "0.115.6"),))
    stack("aws", secrets=phone, botProject=str(able))  # the positive control: the same config, a project that can
    stack("aws", secrets={**SECRETS, "voicefleet:dailyDialinSecret": "d" * 40},
          botProject=str(project(tmp_path / "dial-in")))  # Daily's dial-in comes through a room: no FastAPI needed


def test_a_turn_relay_with_a_project_without_webrtc_fails_the_preview(stack: StackRunner, tmp_path: Path) -> None:
    folder = project(tmp_path)  # daily-python and onnxruntime, no aiortc
    with pytest.raises(SettingsError, match="voicefleet:botProject .* has no aiortc"):
        stack("aws", secrets=WITH_TURN,
              botProject=str(folder), turn="external", turnUrls="turn:turn.example.com:3478", **CHANNEL["aws"])


def test_a_phone_only_project_deploys_with_a_carrier_and_is_refused_where_nothing_would_reach_it(
        stack: StackRunner) -> None:
    """twilio-chatbot/inbound's shape (websocket and silero extras, no daily-python): the plan takes
    it where the stack answers calls, and says what is missing where the stack serves Daily only."""
    folder = str(ROOT / "tests" / "fixtures" / "projects" / "twilio_inbound")
    phone = {**SECRETS, "voicefleet:twilioAuthToken": "SENTINEL-phone-0123456789abcdef0123456789abcdef"}
    for cloud in ("aws", "gcp"):  # over 400 MB: stated, not refused (no botImageBudgetMb set)
        built = images(stack(cloud, secrets=phone, botProject=folder))
        assert built["bot"]["context"]["named"] == {"bot-project": {"location": folder}}  # type: ignore[index]
    with pytest.raises(SettingsError, match="builds Pipecat's websocket transport, not daily.*twilioAuthToken"):
        stack("aws", botProject=folder)


def test_the_drains_up_is_not_refused_for_a_bot_image_over_budget(stack: StackRunner,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`drain: true` launches no bot and comes before a destroy: the budget warns, it does not block it."""
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    folder = str(ROOT / "tests" / "fixtures" / "projects" / "twilio_inbound")
    phone = {**SECRETS, "voicefleet:twilioAuthToken": "SENTINEL-phone-0123456789abcdef0123456789abcdef"}
    stack("aws", secrets=phone, botProject=folder, botImageBudgetMb="400", drain="true")
    assert any("over the budget; not refused while draining" in w for w in warned), warned


def test_a_bot_image_over_the_reference_size_is_stated_with_its_slimming_and_passes_by_default(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """twilio_inbound locks numba/llvmlite (Pipecat's resampy path) and excludes nothing, as every
    unchanged pipecat-examples project does: over the 400 MB voicefleet holds its own bot image to.
    With no botImageBudgetMb the plan states the size, the pull it costs and the slimming, and passes."""
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    folder = str(ROOT / "tests" / "fixtures" / "projects" / "twilio_inbound")
    phone = {**SECRETS, "voicefleet:twilioAuthToken": "SENTINEL-phone-0123456789abcdef0123456789abcdef"}
    stack("aws", secrets=phone, botProject=folder)
    (line,) = [line for line in warned if "image's packages are predicted" in line]
    assert "predicted at 502 MB installed (no voicefleet:botImageBudgetMb set)" in line, line
    assert re.search(r"a cold start pulls about \d+ MB compressed, about \d+ s at", line), line
    assert "over the 400 MB voicefleet holds its own bot image to" in line, line
    assert "exclude-packages numba llvmlite resampy" in line and "llvmlite" in line, line
    assert "Not refused" in line and "`pulumi config set voicefleet:botImageBudgetMb N`" in line, line
    # …word for word what the image build says of a closure that size (images/ci/build.sh, run_image.py)
    predicted = float(re.search(r"predicted at (\d+) MB", line)[1])  # type: ignore[index]
    assert judge("bot", predicted).note in line, line  # type: ignore[operator]


def test_a_stack_that_sets_a_bot_image_budget_is_held_to_it(stack: StackRunner,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Set, `botImageBudgetMb` is enforced: `pulumi preview` stops over it, naming the packages, the
    slimming and the command that raises it."""
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    folder = str(ROOT / "tests" / "fixtures" / "projects" / "twilio_inbound")
    phone = {**SECRETS, "voicefleet:twilioAuthToken": "SENTINEL-phone-0123456789abcdef0123456789abcdef"}
    with pytest.raises(SettingsError, match="botImageBudgetMb 400") as refused:
        stack("aws", secrets=phone, botProject=folder, botImageBudgetMb="400")
    message = str(refused.value)
    assert "over the budget" in message and "llvmlite" in message, message
    assert "exclude-packages numba llvmlite resampy" in message, message
    assert re.search(r"a cold start pulls about \d+ MB compressed, about \d+ s at", message), message
    assert "priced as gzip layers (this stack pushes the bot image zstd to ECR" in message, message
    assert "`pulumi config set voicefleet:botImageBudgetMb 502`" in message, message
    stack("aws", secrets=phone, botProject=folder, botImageBudgetMb="502")  # raised knowingly: stated, not refused
    assert any("predicted at 502 MB installed (voicefleet:botImageBudgetMb 502)" in line for line in said), said
    with pytest.raises(SettingsError, match="botImageBudgetMb must be 0 .* or at least 50"):
        stack("aws", botImageBudgetMb="10")
    stack("aws")  # the parrot, as the default stack builds it
    # …and its SmallWebRTC image, which carries aiortc's stack on top (images/budgets.py allows it more)
    stack("aws", secrets=WITH_TURN, turn="external", turnUrls="turn:turn.example.com:3478", **CHANNEL["aws"])
    images = [line for line in said if " image's packages are predicted" in line]  # the ceiling's note follows
    assert [line.split(" image's")[0].rsplit(" ", 1)[-1] for line in images[-2:]] == ["bot", "bot-webrtc"], said

@pytest.mark.parametrize(("serializer", "named", "not_named"), [
    ("telnyx", "`pulumi config set --secret telnyxPublicKey …`", "twilioAuthToken"),
    ("exotel", "`pulumi config set --secret exotelApiKey …` and `pulumi config set --secret exotelApiToken …`",
     "twilioAuthToken"),
    ("vonage", "`pulumi config set --secret phoneTokenSecret …` for calls that start with POST /start", "twilio"),
])
def test_a_phone_bot_on_a_stack_without_calls_is_told_the_credential_of_the_carrier_it_answers(
        stack: StackRunner, tmp_path: Path, serializer: str, named: str, not_named: str) -> None:
    """pipecat-examples' Telnyx and Vonage bots build their serializer by hand: the refusal names that
    carrier's key, and phoneTokenSecret for calls placed or relayed through POST /start."""
    folder = project(tmp_path, extra=(("fastapi", "0.115.6"),))
    (folder / "bot.py").write_text(
        f"from pipecat.serializers.{serializer} import Serializer\n"
        "from pipecat.transports.websocket.fastapi import FastAPIWebsocketTransport\n\n\n"
        "async def bot(runner_args):\n    pass\n")
    with pytest.raises(SettingsError) as refused:
        stack("aws", botProject=str(folder))
    message = str(refused.value)
    assert named in message and not_named not in message, message
    assert "phoneTokenSecret" in message, message


@pytest.mark.parametrize(("name", "key", "value", "plain"), [
    ("TWILIO_AUTH_TOKEN", "twilioAuthToken", "SENTINEL-stack-twilio-0123456789abcdef", {}),
    ("OTEL_EXPORTER_OTLP_HEADERS", "otelExporterOtlpHeaders", "authorization=Bearer SENTINEL-otlp",
     {"otelExporterOtlpEndpoint": "https://otlp.example.com"}),
])
def test_a_bot_secret_named_as_a_stack_secret_that_is_set_is_refused(
        stack: StackRunner, name: str, key: str, value: str, plain: dict[str, str]) -> None:
    """The secret store holds one value per name: the bot would read the stack's value and the dispatcher,
    which never takes a bot's own secret, would lose its own."""
    secrets = {**SECRETS, "voicefleet:botSecrets": json.dumps({name: "SENTINEL-the-bots-own"}),
               f"voicefleet:{key}": value}
    with pytest.raises(SettingsError, match=rf"voicefleet:botSecrets.*sets {name}, which voicefleet:{key} sets too"):
        stack("aws", secrets=secrets, **plain)


def test_a_bot_secret_named_as_a_stack_secret_that_is_unset_is_the_bots(stack: StackRunner) -> None:
    run = stack("aws", secrets=WITH_USER_SECRETS)  # TWILIO_AUTH_TOKEN the bot's, twilioAuthToken unset
    dispatcher = container(run, "dispatcher")
    assert "TWILIO_AUTH_TOKEN" not in {item["name"] for item in dispatcher.get("secrets", [])}
