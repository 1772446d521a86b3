"""`python -m stacks.import_pcc`: a Pipecat Cloud pcc-deploy.toml becomes stack config commands.

Fixtures (tests/infra/tools/pcc/): `starter`, the project `pipecat init` writes (its Dockerfile, a secret set
with a .env); `custom`, every field a hosted or Enterprise deployment may set, a custom Dockerfile.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.tools import import_pcc
from stacks.tools.import_pcc import PccConfigError, convert, dockerfile_notes, env_values, fargate_size

PCC = Path(__file__).resolve().parent / "pcc"
STARTER = PCC / "starter" / "pcc-deploy.toml"
CUSTOM = PCC / "custom" / "pcc-deploy.toml"
EVERY_KEY = PCC / "every_key" / "pcc-deploy.toml"


def settings(text: str) -> dict[str, str]:
    """`pulumi config set KEY VALUE` lines -> {KEY: VALUE} (secret pipes left out)."""
    found = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] == ["pulumi", "config", "set"] and "--secret" not in words:
            found[words[3]] = words[4]
    return found


def test_the_starter_project_becomes_the_stack_settings_pipecat_cloud_used() -> None:
    rendered = convert(STARTER, "aws").render()
    assert settings(rendered) == {"cloud": "aws", "botProject": str(Path(STARTER.parent).relative_to(Path.cwd())),
                                  "botCpu": "512", "botMemory": "1024", "reserveMinIdle": "1",
                                  "maxSessionSeconds": "7200"}
    assert "(pipecat-ai 1.14.0)" in rendered  # the project itself was read and is buildable
    assert "pulumi stack init" in rendered and "image: voicefleet builds" in rendered


def test_the_starter_dockerfile_needs_nothing_by_hand() -> None:
    assert dockerfile_notes(STARTER.parent / "Dockerfile") == []


def test_a_secret_set_becomes_named_bot_secrets_piped_from_the_env_file_never_printed() -> None:
    env_file = STARTER.parent / ".env"
    rendered = convert(STARTER, "gcp", env_file).render()
    pipes = [line for line in rendered.splitlines() if "--secret" in line]
    assert [line.split("botSecrets.")[1].split("'")[0] for line in pipes] == [
        "DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY"]
    assert "SENTINEL" not in rendered
    assert env_values(env_file) == {"DEEPGRAM_API_KEY": "SENTINEL-dg-value", "OPENAI_API_KEY": "SENTINEL-oa-value",
                                    "CARTESIA_API_KEY": "SENTINEL-ca-value"}


def test_the_value_mode_writes_one_value_to_stdout_for_the_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    env_file = str(STARTER.parent / ".env")
    assert import_pcc.main(["--env-file", env_file, "--value", "CARTESIA_API_KEY"]) == 0
    assert capsys.readouterr().out == "SENTINEL-ca-value"  # no quotes, no newline
    assert import_pcc.main(["--env-file", env_file, "--value", "MISSING"]) == 1


def test_every_field_of_a_custom_deployment_is_carried_or_explained() -> None:
    rendered = convert(CUSTOM, "aws").render()
    assert settings(rendered) == {"cloud": "aws", "botProject": str((CUSTOM.parent / "app").relative_to(Path.cwd())),
                                  "aws:region": "eu-central-1", "botCpu": "2048", "botMemory": "4096",
                                  "reserveMinIdle": "2", "maxConcurrentSessions": "40", "maxSessionSeconds": "900"}
    assert "rounded up to a Fargate size" in rendered
    for field in ("build_id", "krisp_viva", "websocket_auth", "secret_set support-secrets", "agent_name support-line"):
        assert f"# - {field}" in rendered, field
    assert "has no bot.py" in rendered  # the project folder is checked as `pulumi preview` will


def test_a_custom_dockerfile_says_where_each_extra_step_goes() -> None:
    notes = dockerfile_notes(CUSTOM.parent / "app" / "Dockerfile.pcc")
    assert len(notes) == 3
    assert "apt-get" in notes[0] and "system packages" in notes[0]
    assert "download_models.py" in notes[1] and "bake.py" in notes[1]
    assert "PROMPT_STYLE" in notes[2]


def test_on_gcp_a_profile_maps_to_a_machine_type_and_explicit_resources_to_a_note() -> None:
    assert settings(convert(STARTER, "gcp").render())["botMachineType"] == "e2-small"
    rendered = convert(CUSTOM, "gcp").render()
    assert "gcp:region" in settings(rendered) and "botMachineType" not in settings(rendered)
    assert "at least 1.5 vCPU and 3 GiB" in rendered


@pytest.mark.parametrize(("vcpu", "gib", "size"), [(0.5, 1, (512, 1024)), (1, 2, (1024, 2048)),
                                                   (1.5, 3, (2048, 4096)), (0.25, 0.5, (256, 512))])
def test_fargate_sizes_are_the_smallest_at_least_as_large(vcpu: float, gib: float, size: tuple[int, int]) -> None:
    assert fargate_size(vcpu, gib) == size


@pytest.mark.parametrize(("text", "problem"), [
    ('agent_profile = "agent-9x"\n', "agent_profile 'agent-9x'"),
    ('region = "mars"\n', "region 'mars'"),
    ('max_session_duration = 30\n', "60..14400"),
    ('[scaling]\nmin_agents = 3\nmax_agents = 2\n', "max_agents"),
    ('[resources]\ncpu = "lots"\nmemory = "1Gi"\n', "is not a quantity"),
    # the pairs Pipecat Cloud refuses: its CLI's DeployConfigParams, and docs.pipecat.ai enterprise/sizing
    ('image = "me/bot:1"\nbuild_id = "b-1"\n', "image and build_id cannot both be set"),
    ('agent_profile = "agent-2x"\n[resources]\ncpu = "1"\nmemory = "2Gi"\n',
     "agent_profile and \\[resources\\] cannot both be set"),
    ('websocket_auth = "hmac"\n', "websocket_auth 'hmac' is not one of none, token"),
    # the spelling Pipecat Cloud never read: refused, naming the one it reads
    ('[build]\nexclude_patterns = ["*.wav"]\n', "write the patterns as \\[build.exclude\\] patterns"),
    ('[build.exclude]\npatterns = "*.wav"\n', "must be a list of strings"),
    ('agent_name = \n', "Invalid value"),
])
def test_values_pipecat_cloud_would_refuse_are_refused_here(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "pcc-deploy.toml"
    config.write_text(text)
    with pytest.raises(PccConfigError, match=problem):
        convert(config, "aws")


def test_the_command_runs_as_documented() -> None:
    result = subprocess.run([sys.executable, "-m", "stacks.import_pcc", str(STARTER), "--cloud", "aws"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert "pulumi config set reserveMinIdle 1" in result.stdout


def test_every_documented_key_is_taken_each_mapped_or_explained_and_blank_values_set_no_secret() -> None:
    """The official starter's `enable_krisp = true` and every other documented key: the command a
    user runs exits 0 with the settings and a note per key that does not carry over."""
    env_file = EVERY_KEY.parent / "env.example"
    result = subprocess.run([sys.executable, "-m", "stacks.import_pcc", str(EVERY_KEY), "--cloud", "aws",
                             "--env-file", str(env_file)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    rendered = result.stdout
    assert settings(rendered) == {"cloud": "aws", "botProject": str((PCC / "starter").relative_to(Path.cwd())),
                                  "aws:region": "us-east-1", "botCpu": "1024", "botMemory": "2048",
                                  "reserveMinIdle": "1", "maxConcurrentSessions": "10", "maxSessionSeconds": "3600"}
    for key in ("image", "image_credentials", "enable_krisp", "krisp_viva", "enable_managed_keys", "websocket_auth",
                "docker", "build.exclude.patterns", "agent_name every-key"):
        assert f"# - {key}" in rendered, key
    # the documented `[build.exclude] patterns` reach the project's .dockerignore, each one
    assert "printf '%s\\n' '*.wav' recordings/ >> " in rendered and "starter/.dockerignore" in rendered
    pipes = [line for line in rendered.splitlines() if "--secret" in line and line.startswith("uv run")]
    assert [line.split("botSecrets.")[1].split("'")[0] for line in pipes] == ["DEEPGRAM_API_KEY", "ENV"]
    assert "# - WHATSAPP_TOKEN, WHATSAPP_APP_SECRET: empty" in rendered
    assert "SENTINEL" not in rendered


def test_a_key_pipecat_cloud_does_not_document_is_a_note_not_an_abort(tmp_path: Path) -> None:
    config = tmp_path / "pcc-deploy.toml"
    config.write_text('agent_nme = "typo"\n')
    assert "# - agent_nme: not keys Pipecat Cloud documents" in convert(config, "aws").render()


@pytest.mark.parametrize(("mode", "says"), [("token", "the same here"), ("none", "must call POST /start first")])
def test_websocket_auth_says_what_changes_for_clients(tmp_path: Path, mode: str, says: str) -> None:
    config = tmp_path / "pcc-deploy.toml"
    config.write_text(f'websocket_auth = "{mode}"\n')
    assert f"# - websocket_auth {mode}: " in (rendered := convert(config, "aws").render()) and says in rendered


def test_max_agents_above_pipecat_clouds_cap_is_carried_with_a_note_on_the_clouds_quota(tmp_path: Path) -> None:
    config = tmp_path / "pcc-deploy.toml"
    config.write_text("[scaling]\nmax_agents = 80\n")
    rendered = convert(config, "aws").render()
    assert settings(rendered)["maxConcurrentSessions"] == "80"
    assert "# - scaling.max_agents 80: above Pipecat Cloud's default cap of 50" in rendered
    config.write_text("[scaling]\nmax_agents = 50\n")
    assert "scaling.max_agents 50" not in convert(config, "aws").render()


@pytest.mark.parametrize(
    ("transports", "noted"),
    [('{"webrtc": lambda: None}', True), ('{"webrtc": lambda: None, "twilio": lambda: None}', True),
     ('{"daily": lambda: None, "webrtc": lambda: None}', False)],
)  # fmt: skip
def test_a_bot_without_daily_but_with_smallwebrtc_is_told_it_needs_a_turn_relay(
    tmp_path: Path, transports: str, noted: bool
) -> None:
    # pipecat-examples' p2p-webrtc/pipecat-cloud: its bot.py builds SmallWebRTC only, and it has no uv.lock yet.
    (tmp_path / "pcc-deploy.toml").write_text('agent_name = "p2p"\n')
    bot = f"async def bot(runner_args):\n    await create_transport(runner_args, {transports})\n"
    (tmp_path / "bot.py").write_text(f"from pipecat.runner.utils import create_transport\n\n\n{bot}")
    rendered = convert(tmp_path / "pcc-deploy.toml", "aws").render()
    note = [line for line in rendered.splitlines() if "SmallWebRTC" in line]
    if noted:
        assert len(note) == 1 and "bot.py:5 builds" in note[0] and "pulumi config set turn managed" in note[0], rendered
    else:
        assert note == [], rendered


def test_the_image_size_and_the_carrier_credential_the_plan_will_want_are_said(tmp_path: Path) -> None:
    """pipecat-examples' twilio-chatbot inbound shape (tests/fixtures/projects): its image is over the
    400 MB voicefleet holds its own to, and it answers Twilio's calls; both are said before the plan."""
    folder = Path(__file__).resolve().parents[2] / "fixtures" / "projects" / "twilio_inbound"
    (tmp_path / "pcc-deploy.toml").write_text(f'agent_name = "calls"\n[build]\ncontext_dir = "{folder}"\n')
    rendered = convert(tmp_path / "pcc-deploy.toml", "aws").render()
    (size,) = [line for line in rendered.splitlines() if "image size:" in line]
    assert "the bot image's packages are predicted at 502 MB installed" in size, size
    assert "a cold start pulls about" in size and "exclude-packages numba llvmlite resampy" in size, size
    assert "The plan states this and passes" in size, size
    (phone,) = [line for line in rendered.splitlines() if "phone:" in line]
    assert "the plan refuses this project on a stack that takes no calls" in phone, phone
    assert "`pulumi config set --secret twilioAuthToken …`" in phone and "phoneTokenSecret" in phone, phone


def test_a_smallwebrtc_only_bot_is_sized_as_its_one_image(tmp_path: Path) -> None:
    """A stack with a relay builds a SmallWebRTC-only bot's SmallWebRTC image alone, as the plan sizes it."""
    folder = Path(__file__).resolve().parents[2] / "fixtures" / "projects" / "webrtc_video"
    (tmp_path / "pcc-deploy.toml").write_text(f'agent_name = "video"\n[build]\ncontext_dir = "{folder}"\n')
    rendered = convert(tmp_path / "pcc-deploy.toml", "aws").render()
    sized = [line.split(" image's packages")[0].rsplit(" ", 1)[-1] for line in rendered.splitlines()
             if "image size:" in line]
    assert sized == ["bot-webrtc"], rendered


def test_the_otlp_endpoint_is_not_made_a_bot_secret_and_the_stack_setting_is_named(tmp_path: Path) -> None:
    """A stack's otelExporterOtlpEndpoint sets that variable on every bot for voicefleet's OTLP/HTTP
    exporter: as a bot secret it would collide, so the conversion says what to set instead."""
    (tmp_path / "pcc-deploy.toml").write_text('secret_set = "otel"\n')
    (tmp_path / "bot.py").write_text(BOT_FILE_TEXT)
    env_file = tmp_path / ".env"
    env_file.write_text("ENABLE_TRACING=true\nOTEL_EXPORTER_OTLP_ENDPOINT=http://SENTINEL-collector:4317\n"
                        "BOT_FILE=elsewhere.py\n")
    rendered = convert(tmp_path / "pcc-deploy.toml", "aws", env_file).render()
    pipes = [line.split("botSecrets.")[1].split("'")[0] for line in rendered.splitlines() if "--secret --path" in line]
    assert pipes == ["ENABLE_TRACING"], rendered
    (otel,) = [line for line in rendered.splitlines() if "OTEL_EXPORTER_OTLP_ENDPOINT (in" in line]
    assert "not a bot secret here" in otel and "pulumi config set otelExporterOtlpEndpoint" in otel, otel
    assert "BOT_FILE (in" in rendered and "SENTINEL" not in rendered, rendered


BOT_FILE_TEXT = "async def bot(runner_args):\n    pass\n"


def test_a_project_folder_is_read_through_its_pcc_deploy_toml_and_one_without_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert import_pcc.main([str(STARTER.parent), "--cloud", "aws"]) == 0
    assert capsys.readouterr().out == convert(STARTER, "aws", None).render()
    assert import_pcc.main([str(tmp_path), "--cloud", "aws"]) == 1
    assert "is a folder with no pcc-deploy.toml" in capsys.readouterr().err


def test_an_env_file_is_read_as_python_dotenv_reads_it_comments_included(tmp_path: Path) -> None:
    """pipecat-examples' env.example files write `KEY= # Create here: https://…`: that key is blank (a
    comment), not a secret whose value is the comment."""
    from dotenv import dotenv_values

    env_file = tmp_path / "env.example"
    env_file.write_text("CARTESIA_API_KEY= # Create here: https://play.cartesia.ai/keys\n"
                        "OPENAI_API_KEY=sk-x # the key\nHASH=#kept\nINNER=a#b\nQUOTED=\"q # kept\" # dropped\n"
                        "export SINGLE='s'\n")
    assert env_values(env_file) == dict(dotenv_values(env_file)) == {
        "CARTESIA_API_KEY": "", "OPENAI_API_KEY": "sk-x", "HASH": "#kept", "INNER": "a#b", "QUOTED": "q # kept",
        "SINGLE": "s"}
    rendered = convert(STARTER, "aws", env_file).render()
    assert "botSecrets.CARTESIA_API_KEY" not in rendered and "botSecrets.OPENAI_API_KEY" in rendered
    assert f"CARTESIA_API_KEY: empty in {env_file}" in rendered
