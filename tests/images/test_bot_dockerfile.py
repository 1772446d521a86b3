"""The bot image's structure, read from images/bot.Dockerfile (no Docker engine is needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.images.closure import BOT_DOCKERFILE, excluded_packages, uv_sync_argv
from tests.images.dockerfile import Dockerfile, Stage, parse_file, shell_commands
from tests.images.examples_shaped import examples_shaped_project


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_file(BOT_DOCKERFILE)


@pytest.fixture(scope="module")
def runtime(dockerfile: Dockerfile) -> Stage:
    return dockerfile.final


def _copies_from(stage: Stage, source_stage: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each `COPY --from=<source_stage>` in `stage`."""
    result = []
    for copy in stage.all("COPY"):
        if copy.flag("from") == source_stage:
            *sources, dest = copy.args.split()
            result.append((sources, dest))
    return result


def test_bot_image_has_build_bake_and_runtime_stages_in_that_order(dockerfile: Dockerfile) -> None:
    names = [stage.name for stage in dockerfile.stages]
    assert [n for n in names if n in {"build", "bake", "runtime"}] == ["build", "bake", "runtime"]
    assert dockerfile.final.name == "runtime"


def test_python_base_is_a_slim_image_pinned_to_a_patch_release(dockerfile: Dockerfile) -> None:
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", dockerfile.global_args["PYTHON_IMAGE"])


def test_build_and_runtime_share_the_python_base_the_venv_points_at(dockerfile: Dockerfile) -> None:
    assert dockerfile.stage("build").base == dockerfile.final.base == "${PYTHON_IMAGE}"
    assert dockerfile.stage("build").env()["UV_PYTHON"].startswith("/usr/local/bin/python3.11")


def test_runtime_installs_nothing_and_has_no_torch_compilers_or_uv(runtime: Stage) -> None:
    text = " ".join(i.args for i in runtime.instructions if i.keyword in {"RUN", "COPY", "ADD"})
    tokens = set(re.split(r"[\s/=:\"'&;]+", text))
    forbidden = {"apt-get", "apt", "pip", "pip3", "torch", "gcc", "g++", "build-essential", "make", "uv", "uvx"}
    assert tokens & forbidden == set()


def test_runtime_takes_the_venv_and_tini_from_build_and_only_baked_data_from_bake(runtime: Stage) -> None:
    from_build = {source for sources, _ in _copies_from(runtime, "build") for source in sources}
    assert from_build == {"/opt/venv", "/usr/bin/tini"}
    from_bake = [source for sources, _ in _copies_from(runtime, "bake") for source in sources]
    assert from_bake and all(source.startswith("/opt/models") for source in from_bake)


def test_runtime_points_nltk_data_and_torch_home_at_directories_the_bake_stage_fills(
    dockerfile: Dockerfile, runtime: Stage
) -> None:
    copied = [dest for _, dest in _copies_from(runtime, "bake")]
    env = runtime.env()
    bake_text = dockerfile.stage("bake").run_text()
    assert f"nltk --dest {env['NLTK_DATA']}" in bake_text
    assert f"torch-hub --dest {env['TORCH_HOME']}/hub" in bake_text
    for path in (env["NLTK_DATA"], env["TORCH_HOME"]):
        assert any(path == dest or path.startswith(dest.rstrip("/") + "/") for dest in copied), path


def test_runtime_is_offline_and_writes_no_bytecode(runtime: Stage) -> None:
    env = runtime.env()
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "PYTHONDONTWRITEBYTECODE"):
        assert env.get(flag) == "1", flag
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_entrypoint_is_tini_forwarding_sigterm_to_python_m_bot(runtime: Stage) -> None:
    entrypoint = runtime.last("ENTRYPOINT")
    assert entrypoint is not None
    argv = entrypoint.exec_form()
    assert argv[0].endswith("/tini") and "--" in argv
    tini_flags, command = argv[1 : argv.index("--")], argv[argv.index("--") + 1 :]
    assert tini_flags == ["-e", "143"]  # a SIGTERM'd bot (128 + 15) exits 0, like a graceful stop
    # `-I`: the working directory (/app, the user's project with its bot.py) is not on sys.path, so
    # `-m bot` finds the host package through the venv's voicefleet.pth, never the user's bot.py;
    # and no PYTHON* variable acts (tests/images/test_isolated_entrypoint.py runs it).
    assert command == ["python", "-I", "-u", "-B", "-m", "bot"]
    assert "PYTHONPATH" not in runtime.env() and runtime.env()["BOT_FILE"] == "/app/bot.py"
    assert runtime.last("CMD") is None  # session flags come from the task's command override


def test_build_compiles_bytecode_and_caches_uv_downloads_outside_the_image(dockerfile: Dockerfile) -> None:
    build = dockerfile.stage("build")
    assert build.env()["UV_COMPILE_BYTECODE"] == "1"
    sync_run = next(run for run in build.all("RUN") if "install_project.sh" in run.args)
    assert "type=cache,target=/root/.cache/uv" in sync_run.flag_values("mount")
    # XDG_CACHE_HOME points into the image (/opt/models/cache): uv's cache must stay on the mount.
    assert build.env()["UV_CACHE_DIR"] == "/root/.cache/uv"


@pytest.mark.parametrize("stage", ["build", "build-webrtc"])
def test_build_installs_the_bot_projects_lock_without_its_dev_group_or_itself(dockerfile: Dockerfile,
                                                                               stage: str) -> None:
    argv = uv_sync_argv(dockerfile.stage(stage))
    assert "--locked" in argv  # a lock that no longer matches pyproject.toml fails the build
    assert "--no-dev" in argv and "--no-install-project" in argv
    assert "--all-groups" not in argv and "--group" not in argv
    install = next(run for run in dockerfile.stage(stage).all("RUN") if "install_project.sh" in run.args)
    assert "type=bind,from=bot-project,target=/project" in install.flag_values("mount")
    assert dockerfile.effective(stage).last("WORKDIR").args == "/project"  # type: ignore[union-attr]


def test_the_projects_own_exclusions_come_from_its_pyproject(dockerfile: Dockerfile) -> None:
    excluded = excluded_packages(uv_sync_argv(dockerfile.stage("build")))
    assert {"numba", "llvmlite", "resampy", "opencv-python-headless"} <= set(excluded)  # examples/parrot's
    assert "BOT_EXCLUDE_PACKAGES" in dockerfile.stage("build").run_text()


def test_torch_is_installed_only_in_a_bake_venv_that_is_not_copied_on(dockerfile: Dockerfile) -> None:
    stages_with_torch = [s.name for s in dockerfile.stages if "torch==" in s.run_text()]
    assert stages_with_torch == ["bake"]
    words = next(run.args.split() for run in dockerfile.stage("bake").all("RUN") if "torch==" in run.args)
    assert not words[words.index("--python") + 1].startswith("/opt/venv")
    assert words[words.index("--index-url") + 1].endswith("/whl/cpu")  # the default wheel pulls CUDA


def test_bake_stage_proves_silero_loads_from_the_wheel_with_the_runtime_venv(dockerfile: Dockerfile) -> None:
    commands = [argv for run in dockerfile.stage("bake").all("RUN") for argv in shell_commands(run)]
    assert ["/opt/venv/bin/python", "/opt/bake/bake_models.py", "verify-vad"] in commands


@pytest.mark.parametrize(
    ("variant", "code_stage", "venv_stage", "transport"),
    [("runtime", "code", "build", "daily"), ("runtime-webrtc", "code-webrtc", "build-webrtc", "webrtc")],
)
def test_host_and_project_are_the_only_sources_and_arrive_compiled_by_a_check_with_the_variants_venv(
    dockerfile: Dockerfile, variant: str, code_stage: str, venv_stage: str, transport: str
) -> None:
    runtime = dockerfile.effective(variant)
    assert [c.args for c in runtime.all("COPY") if c.flag("from") is None] == []
    assert _copies_from(runtime, code_stage) == [(["/opt/voicefleet"], "/opt/voicefleet"), (["/app"], "/app")]
    code = dockerfile.effective(code_stage)
    assert dockerfile.stage(code_stage).base == venv_stage  # the venv the variant's runtime copies
    own = dockerfile.stage(code_stage)
    from_context = [copy.args.split() for copy in own.all("COPY") if copy.flag("from") is None]
    assert from_context == [["bot/", "/opt/voicefleet/bot/"], ["botchannel/", "/opt/voicefleet/botchannel/"],
                            ["voicefleet_settings/", "/opt/voicefleet/voicefleet_settings/"]]
    # Bytecode written where the runtime reads it (bot/dataclass_code.py: the host's bot/__pycache__),
    # by the runtime's own command, file and transport, in a stage that may write it.
    assert code.last("WORKDIR").args == "/app"  # type: ignore[union-attr]
    checks = [argv for run in own.all("RUN") for argv in shell_commands(run) if "--check" in argv]
    assert checks == [[f"BOT_TRANSPORT={transport}", "BOT_FILE=/app/bot.py", "PYTHONPATH=/opt/voicefleet",
                       "/opt/venv/bin/python", "-P", "-m", "bot", "--check"]]
    assert "PYTHONDONTWRITEBYTECODE" not in code.env()


def test_the_project_is_copied_without_venv_git_caches_or_env_files_and_compiled(dockerfile: Dockerfile) -> None:
    text = dockerfile.stage("code").run_text()
    for excluded in ("./.venv", "./.git", "__pycache__", "*.pyc", "./.env", "./.env.*"):
        assert f"--exclude={excluded}" in text or f"--exclude='{excluded}'" in text, excluded
    assert "python -m compileall -q /app" in text
    assert "chmod -R a+rX,go-w /app" in text  # readable by the bot's uid whatever the folder's modes


def test_the_projects_bake_hook_runs_with_its_venv_from_the_models_directory(dockerfile: Dockerfile) -> None:
    bake = dockerfile.stage("bake")
    hook = next(run for run in bake.all("RUN") if "bake.py" in run.args)
    assert "type=bind,from=bot-project,target=/project" in hook.flag_values("mount")
    assert 'cd "$BOT_MODELS_DIR" && /opt/venv/bin/python /project/bake.py' in hook.args
    runtime = dockerfile.final.env()
    for stage in ("bake", "code", "code-webrtc"):  # the code stages' --check may load baked models at import
        env = dockerfile.effective(stage).env()
        for name in ("BOT_MODELS_DIR", "HF_HOME", "XDG_CACHE_HOME", "TORCH_HOME"):
            assert env[name] == runtime[name] and runtime[name].startswith("/opt/models/"), (stage, name)
    for stage in ("code", "code-webrtc"):
        assert _copies_from(dockerfile.stage(stage), "bake") == [(["/opt/models"], "/opt/models")]


def test_excluded_packages_are_each_named_once(dockerfile: Dockerfile) -> None:
    excluded = excluded_packages(uv_sync_argv(dockerfile.stage("build")))
    assert len(excluded) == len(set(excluded))


# --- the SmallWebRTC variant (target runtime-webrtc) ------------------------------------------


def test_webrtc_variant_carries_aiortc_and_not_daily_and_defaults_to_webrtc(dockerfile: Dockerfile) -> None:
    from tests.images.test_both_images import locked_closure

    closure = locked_closure(dockerfile, "build-webrtc")
    assert {"aiortc", "av", "aioice", "pylibsrtp", "pipecat-ai", "onnxruntime"} <= closure
    assert not closure & {"daily-python", "opencv-python-headless", "numba", "boto3", "google-auth"}
    webrtc = dockerfile.effective("runtime-webrtc")
    assert webrtc.env()["BOT_TRANSPORT"] == "webrtc"
    assert [c.flag("from") for c in webrtc.all("COPY") if c.args.endswith("/opt/venv")] == ["build-webrtc"]


def test_each_image_keeps_the_transport_its_bot_imports_at_module_level(dockerfile: Dockerfile,
                                                                        tmp_path: Path) -> None:
    """pipecat-examples' bots that offer Daily and WebRTC import `DailyParams` at the top of bot.py:
    that import runs in the SmallWebRTC image too, so that image keeps daily-python for them (and
    only for them: the Daily image still leaves aiortc out, the parrot's SmallWebRTC image daily-python)."""
    from tests.images.test_both_images import locked_closure

    folder = examples_shaped_project(tmp_path)
    webrtc = locked_closure(dockerfile, "build-webrtc", folder)
    assert {"daily-python", "aiortc", "pipecat-ai"} <= webrtc
    assert "aiortc" not in locked_closure(dockerfile, "build", folder)
    assert "daily-python" not in locked_closure(dockerfile, "build-webrtc")  # the parrot imports Daily in a function


def test_daily_image_stays_the_default_target_without_aiortc(dockerfile: Dockerfile) -> None:
    from tests.images.test_both_images import locked_closure

    assert dockerfile.stages[-1].name == "runtime" and dockerfile.final.env()["BOT_TRANSPORT"] == "daily"
    assert "aiortc" not in locked_closure(dockerfile) and "daily-python" in locked_closure(dockerfile)
    assert [c.flag("from") for c in dockerfile.final.all("COPY") if c.args.endswith("/opt/venv")] == ["build"]


def test_both_variants_run_as_the_same_user_under_tini(dockerfile: Dockerfile) -> None:
    for name in ("runtime", "runtime-webrtc"):
        stage = dockerfile.effective(name)
        user, entrypoint = stage.last("USER"), stage.last("ENTRYPOINT")
        assert user is not None and user.args == "10001:10001"
        assert entrypoint is not None and entrypoint.exec_form()[0] == "/usr/bin/tini"


def test_the_bot_can_create_files_in_its_folder_but_not_replace_its_code(dockerfile: Dockerfile) -> None:
    """A bot that writes a recording next to itself (a relative name, in its working directory /app)
    works unchanged: /app is root's with the bot's group, 1775, set after the code is copied in and
    before USER in each variant; the files stay root's, not writable by group or others."""
    for name in ("runtime", "runtime-webrtc"):
        stage = dockerfile.effective(name)
        keywords = [(i.keyword, i.args) for i in stage.instructions]
        mode = ("RUN", "chown 0:10001 /app && chmod 1775 /app")
        assert mode in keywords, name
        at = keywords.index(mode)
        copies = [k for k, (keyword, args) in enumerate(keywords) if keyword == "COPY" and args.endswith(" /app")]
        assert copies and max(copies) < at < keywords.index(("USER", "10001:10001")), (name, keywords)
        assert stage.env()["BOT_FILE"] == "/app/bot.py" and stage.last("WORKDIR").args == "/app"  # type: ignore[union-attr]
    assert "chmod -R a+rX,go-w /app" in dockerfile.stage("code").run_text()  # the files: no group/other write
