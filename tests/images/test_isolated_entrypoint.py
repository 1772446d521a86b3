"""The bot image's entrypoint, `python -I -u -B -m bot`, run for real with the image's layout.

Isolated (`-I`), Python ignores PYTHONPATH and keeps the working directory (/app, the user's
bot.py) off sys.path: the host is found through the venv's voicefleet.pth, which the build stages
write. Here a venv of this machine's interpreter gets that file from the Dockerfile's own RUN (its
image paths mapped to this test's), plus the dev venv's packages for the project's dependencies
(the rebuilt closure, tests/images/test_offline_start.py, is the slow twin). Then the entrypoint
command runs with the runtime stage's ENV: `--check` passes, and with a variable that would run
code of someone else's the host refuses to start.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bot.environment_check import ALLOWED_OPTION, IMAGE_VARIABLES, refusal
from dispatcher.machines.cloudrun.executions import OVERRIDE_NAMES
from stacks.gcp import bot_job
from tests.images.closure import (
    BOT_DOCKERFILE,
    Closure,
    entrypoint_command,
    host_path_runs,
    runtime_env,
    runtime_root,
    write_host_path,
)
from tests.images.dockerfile import parse_file

VENV_STAGES = ("build", "build-webrtc")  # the stages whose /opt/venv the runtime variants copy
ROOM_ARGS = ["--transport", "daily", "--room-url", "https://voicefleet.daily.co/isolated-check"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Closure, Path]:
    """A venv holding what the image's build stage writes into /opt/venv, and the runtime's code."""
    base = tmp_path_factory.mktemp("isolated-bot")
    venv, root = base / "venv", base / "root"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=60)
    app = runtime_root(BOT_DOCKERFILE, root)
    write_host_path(BOT_DOCKERFILE, venv, root)
    closure = Closure(venv=venv, argv=[])
    # The project's dependencies: this machine's dev venv (the image has them in /opt/venv itself).
    (closure.site_packages / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return closure, app


def run_entrypoint(image: tuple[Closure, Path], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    closure, app = image
    env = {**runtime_env(BOT_DOCKERFILE, closure, app.parent / "home", root=app.parent), **extra}
    return subprocess.run([*entrypoint_command(BOT_DOCKERFILE), *args], cwd=app, env=env, capture_output=True,
                          text=True, timeout=120)


def test_every_venv_the_runtimes_copy_gets_the_hosts_path_file() -> None:
    assert all(len(host_path_runs(BOT_DOCKERFILE, stage)) == 1 for stage in VENV_STAGES)
    assert "PYTHONPATH" not in parse_file(BOT_DOCKERFILE).final.env()  # the host refuses it when isolated


def test_the_isolated_entrypoint_finds_the_host_and_checks_the_projects_bot(image: tuple[Closure, Path]) -> None:
    command = entrypoint_command(BOT_DOCKERFILE)
    assert command[:2] == ["python", "-I"]
    result = run_entrypoint(image, "--check", *ROOM_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"event": "checked"' in result.stdout


@pytest.mark.parametrize("variable", ["PYTHONSTARTUP", "BROWSER", "PYTHONPATH", "LD_PRELOAD"])
def test_the_isolated_host_refuses_to_start_with_a_variable_that_runs_code(
    image: tuple[Closure, Path], tmp_path: Path, variable: str
) -> None:
    value = {"LD_PRELOAD": "", "BROWSER": "sh -c 'touch pwned'"}.get(variable, str(tmp_path))
    if variable == "LD_PRELOAD":  # a library the loader finds: the refusal is the host's, not the loader's
        value = next(Path(p) for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6",
                                       "/usr/lib/libm.so.6") if Path(p).exists()).as_posix()
    result = run_entrypoint(image, "--check", *ROOM_ARGS, **{variable: value})
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert f"refusing to start: {variable} set" in result.stderr


# A Cloud Run job's bot: the job's command adds its allow-list (stacks/gcp/bot_job.py).
TEMPLATE_ENV = {"BOT_CHANNEL_URL": "wss://d.example/bots/channel", "LOG_FORMAT": "json", "BOT_TURN_TRANSPORT": "tcp",
                "OPENAI_API_KEY": "sk-from-secret-manager"}
PLATFORM_ENV = {"CLOUD_RUN_JOB": "vf-bot", "CLOUD_RUN_EXECUTION": "vf-bot-abc12", "CLOUD_RUN_TASK_INDEX": "0",
                "CLOUD_RUN_TASK_ATTEMPT": "0", "CLOUD_RUN_TASK_COUNT": "1", "HOSTNAME": "localhost",
                "HOME": "/home/bot"}


def job_allowed(template_env: dict[str, str] = TEMPLATE_ENV) -> str:
    command = bot_job.job_command(template_env)
    option = command[command.index("-X") + 1]
    name, _, names = option.partition("=")
    assert name == ALLOWED_OPTION
    return names


def test_the_jobs_command_is_the_images_entrypoint_and_the_image_env_is_allowed() -> None:
    dockerfile = parse_file(BOT_DOCKERFILE)
    entrypoint = dockerfile.final.last("ENTRYPOINT")
    assert entrypoint is not None and tuple(entrypoint.exec_form()) == bot_job.ENTRYPOINT
    command = bot_job.job_command(TEMPLATE_ENV)
    assert [part for i, part in enumerate(command) if i not in (command.index("-X"), command.index("-X") + 1)] == \
        list(bot_job.ENTRYPOINT)
    for variant in ("runtime", "runtime-webrtc"):
        assert set(dockerfile.effective(variant).env()) <= set(IMAGE_VARIABLES), variant


def test_a_cloud_run_bots_own_environment_passes() -> None:
    env = {**{name: "x" for name in IMAGE_VARIABLES}, **TEMPLATE_ENV, **PLATFORM_ENV,
           **{name: "x" for name in OVERRIDE_NAMES}}  # every name the dispatcher may send in a run
    assert refusal(env, isolated=True, allowed=job_allowed()) is None


@pytest.mark.parametrize("name", ["OPENAI_BASE_URL", "DAILY_API_URL", "HTTPS_PROXY", "ALL_PROXY", "SSL_CERT_FILE",
                                  "OPENSSL_CONF", "REQUESTS_CA_BUNDLE", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
                                  "GCONV_PATH", "https_proxy"])
def test_a_run_override_adding_a_variable_is_refused(name: str) -> None:
    why = refusal({**TEMPLATE_ENV, name: "/proc/self/cmdline"}, isolated=True, allowed=job_allowed())
    assert why is not None and f"refusing to start: {name} set" in why
    assert refusal({**TEMPLATE_ENV, name: "x"}, isolated=True) is None  # other providers: the deny-list only


def test_the_jobs_isolated_host_refuses_an_added_variable_and_any_argument(image: tuple[Closure, Path]) -> None:
    command = bot_job.job_command(TEMPLATE_ENV)
    argv = command[command.index("--") + 1:]
    closure, app = image
    env = {**runtime_env(BOT_DOCKERFILE, closure, app.parent / "home", root=app.parent), **TEMPLATE_ENV}
    for extra, args in (({"SSL_CERT_FILE": "/proc/self/cmdline"}, []), ({}, ["--session-id", "-----BEGIN CERT"])):
        result = subprocess.run([*argv, *args], cwd=app, env={**env, **extra}, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
        assert "refusing to start" in result.stderr and "-----BEGIN" not in result.stderr


@pytest.mark.parametrize("name", ["TWILIO_REGION", "TWILIO_EDGE"])
@pytest.mark.parametrize("value", ["evil.example/#", "evil.example", "ie1 ", "ie1@evil.example"])
def test_a_twilio_host_part_that_is_not_one_label_is_refused_on_every_isolated_host(name: str, value: str) -> None:
    """Pipecat's hang-up sends the account's credential to api.{edge}.{region}.twilio.com: a run's override (or
    any task's environment) naming another host is refused, on Cloud Run where the job allows the name too."""
    region = {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"}
    for allowed in (job_allowed({**TEMPLATE_ENV, **region}), None):
        why = refusal({**TEMPLATE_ENV, **region, name: value}, isolated=True, allowed=allowed)
        assert why is not None and f"refusing to start: {name} is not one DNS label" in why
    assert refusal({**TEMPLATE_ENV, **region, name: value}, isolated=False) is None  # a developer's own run


@pytest.mark.parametrize("region", [{"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"},
                                    {"TWILIO_REGION": "AU1", "TWILIO_EDGE": "sydney"}, {}])
def test_twilios_own_region_and_edge_pass(region: dict[str, str]) -> None:
    env = {**TEMPLATE_ENV, **region}
    assert refusal(env, isolated=True) is None and refusal(env, isolated=True, allowed=job_allowed(env)) is None
