"""A user's bot project is read before any image is built: a folder the build could not serve, or a
Pipecat outside the supported range, is refused with a message that names the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from images import bot_project
from images.bot_project import SUPPORTED_RANGE, BotProjectError, read

ROOT = Path(__file__).resolve().parents[2]
BOT = "async def bot(runner_args):\n    pass\n"


def uv_lock(*packages: tuple[str, str]) -> str:
    """A uv.lock in uv's own shape (version 1, one [[package]] table per locked distribution)."""
    tables = "".join(f'\n[[package]]\nname = "{name}"\nversion = "{version}"\n'
                     f'source = {{ registry = "https://pypi.org/simple" }}\n' for name, version in packages)
    return ('version = 1\nrevision = 3\nrequires-python = ">=3.11"\n\n[[package]]\nname = "my-bot"\n'
            'version = "0.1.0"\nsource = { virtual = "." }\n' + tables)


def project(tmp_path: Path, *, pipecat: str | None = "1.14.0", pyproject: str = "", lock: bool = True,
            requirements: str | None = None, bot: bool = True, extra: tuple[tuple[str, str], ...] = ()) -> Path:
    folder = tmp_path / "my-bot"
    folder.mkdir(parents=True)
    if bot:
        (folder / "bot.py").write_text(BOT)
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
        if pyproject:
            (folder / "pyproject.toml").write_text(pyproject)
        return folder
    (folder / "pyproject.toml").write_text('[project]\nname = "my-bot"\nversion = "0.1.0"\n' + pyproject)
    if lock:
        packages = [("onnxruntime", "1.23.2"), ("daily-python", "0.21.0"), ("numba", "0.62.1"), *extra]
        if pipecat is not None:
            packages.append(("pipecat-ai", pipecat))
        (folder / "uv.lock").write_text(uv_lock(*packages))
    return folder


def refusal(folder: Path) -> str:
    with pytest.raises(BotProjectError) as caught:
        read(folder)
    return str(caught.value)


def test_a_uv_project_in_the_supported_range_is_read_with_its_pipecat_version(tmp_path: Path) -> None:
    found = read(project(tmp_path, pipecat="1.14.0"))
    assert (found.kind, str(found.pipecat_version), found.dependency_files) == ("uv", "1.14.0",
                                                                                ("pyproject.toml", "uv.lock"))
    assert found.exclude_packages == () and not found.has_bake


@pytest.mark.parametrize("version", ["1.13.2", "1.7.0", "2.0.0", "2.1.0rc1"])
def test_a_pipecat_outside_the_supported_range_is_refused_naming_the_version_and_the_range(
        tmp_path: Path, version: str) -> None:
    message = refusal(project(tmp_path, pipecat=version))
    assert f"pipecat-ai {version}" in message and SUPPORTED_RANGE in message and "uv.lock" in message


def test_the_range_edges(tmp_path: Path) -> None:
    assert str(read(project(tmp_path / "a", pipecat="1.14.0")).pipecat_version) == "1.14.0"
    assert str(read(project(tmp_path / "b", pipecat="1.99.3")).pipecat_version) == "1.99.3"
    assert "1.13.99" in refusal(project(tmp_path / "c", pipecat="1.13.99"))


def test_a_lock_without_pipecat_is_refused(tmp_path: Path) -> None:
    assert "does not lock pipecat-ai" in refusal(project(tmp_path, pipecat=None))


def test_a_lock_without_onnxruntime_is_refused_because_the_build_loads_silero(tmp_path: Path) -> None:
    folder = project(tmp_path / "a")
    (folder / "uv.lock").write_text(uv_lock(("pipecat-ai", "1.14.0"), ("daily-python", "0.21.0")))
    assert "has no onnxruntime" in refusal(folder) and "silero extra" in refusal(folder)


PHONE_ONLY = ROOT / "tests" / "fixtures" / "projects" / "twilio_inbound"  # twilio-chatbot/inbound's shape


def test_a_phone_only_project_is_whole_without_daily_python(tmp_path: Path) -> None:
    """pipecat-examples' Twilio, Exotel and WebSocket bots lock `websocket` and `silero` only."""
    found = read(PHONE_ONLY)
    assert found.built == ("websocket",) and found.transports == ("websocket",)
    no_daily = project(tmp_path / "b")
    (no_daily / "uv.lock").write_text(uv_lock(("pipecat-ai", "1.14.0"), ("onnxruntime", "1.23.2")))
    assert read(no_daily).transports == ()  # a bot.py that names no transport: nothing required of it
    assert read(project(tmp_path / "c", requirements="pipecat-ai[silero]==1.14.0\n")).transports == ()


@pytest.mark.parametrize(("source", "line", "transport", "package", "extra"), [
    ('from pipecat.transports.daily.transport import DailyParams\n', 2, "daily", "daily-python", "daily"),
    ('transport_params = {\n    "webrtc": lambda: None,\n}\n', 2, "webrtc", "aiortc", "webrtc"),
    ('async def bot(runner_args):\n    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams\n',
     3, "websocket", "fastapi", "websocket"),
    ('transport_params = {"exotel": lambda: None}\n', 2, "websocket", "fastapi", "websocket"),
])
def test_a_transport_bot_py_builds_needs_its_extra_and_the_refusal_names_line_and_fix(
        tmp_path: Path, source: str, line: int, transport: str, package: str, extra: str) -> None:
    folder = project(tmp_path)
    (folder / "uv.lock").write_text(uv_lock(("pipecat-ai", "1.14.0"), ("onnxruntime", "1.23.2")))
    (folder / "bot.py").write_text("import os\n" + source + BOT)
    message = refusal(folder)
    assert f"{folder / 'bot.py'}:{line} builds Pipecat's {transport} transport" in message, message
    assert f"has no {package}" in message and f"pipecat-ai[{extra}]" in message, message


def test_the_command_a_user_runs_accepts_the_phone_only_project() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "images.bot_project", str(PHONE_ONLY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "transports built: websocket" in done.stdout


def test_the_transports_an_image_can_carry_follow_the_lock_or_the_extras(tmp_path: Path) -> None:
    assert read(project(tmp_path / "a")).transports == ("daily",)
    assert read(project(tmp_path / "b", extra=(("aiortc", "1.14.0"),))).transports == ("daily", "webrtc")
    assert read(project(tmp_path / "c", requirements="pipecat-ai[daily,webrtc]==1.14.0\n")).transports == (
        "daily", "webrtc")
    assert read(project(tmp_path / "d", requirements="pipecat-ai[daily]==1.14.0\n")).transports == ("daily",)
    # Phone calls: Pipecat's websocket extra (FastAPI), locked or named
    assert read(project(tmp_path / "e", extra=(("fastapi", "0.115.6"),))).transports == ("daily", "websocket")
    assert read(project(tmp_path / "f", requirements="pipecat-ai[daily,webrtc,websocket]==1.14.0\n")).transports == (
        "daily", "webrtc", "websocket")


def test_no_bot_py_no_lock_or_no_dependencies_are_each_refused_with_the_fix(tmp_path: Path) -> None:
    assert "no bot.py" in refusal(project(tmp_path / "a", bot=False))
    assert "run `uv lock`" in refusal(project(tmp_path / "b", lock=False))
    bare = tmp_path / "c"
    bare.mkdir()
    (bare / "bot.py").write_text(BOT)
    assert "has no dependencies" in refusal(bare)
    assert "is not a folder" in refusal(tmp_path / "missing")


# A script run with argparse whose main() is no shape the bot host runs unchanged (its `config` has
# no default): the bot host would import it and find nothing to call.
SCRIPT_WITHOUT_BOT = """\
import argparse
import asyncio


async def main(room_url: str, token: str, config):
    bot = object()  # a local name is not the module's `bot`


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    asyncio.run(main(parser.parse_args().url, "", {}))
"""


def test_a_bot_py_that_defines_no_bot_is_refused_naming_the_contract_and_the_file(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text(SCRIPT_WITHOUT_BOT)
    message = refusal(folder)
    assert f"{folder / 'bot.py'} defines no `bot`" in message and "async def bot(runner_args)" in message, message
    # What it has instead, and where the wrapper for it is shown.
    assert "; it has `async def main(room_url: str, token: str, config)`:" in message, message
    assert '"A bot whose entry point is main() or main(room_url, token)"' in message, message


@pytest.mark.parametrize(("source", "runs"), [
    ("async def run_bot(webrtc_connection):\n    pass\n", True),  # entry points the bot host runs unchanged
    ("async def run_bot(webrtc_connection, *, greeting='hi'):\n    pass\n", True),
    ("async def main(room_url: str, token: str):\n    pass\n", True),
    ("async def main():\n    pass\n", True),
    ("async def main(verbose=False):\n    pass\n", True),
    ("def main():\n    pass\n", False),  # not a coroutine: the host runs none
    ("async def main(*, room):\n    pass\n", False),
    ("async def run_bot(connection):\n    pass\n", False),
    ("async def run_bot(webrtc_connection, room):\n    pass\n", False),
])
def test_a_bot_py_without_bot_passes_only_with_an_entry_point_the_host_runs(tmp_path: Path, source: str,
                                                                             runs: bool) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text(source)
    if runs:
        assert read(folder).path == folder
    else:
        assert "defines no `bot`" in refusal(folder)


@pytest.mark.parametrize("source", [
    BOT,
    "def bot(runner_args):\n    return None\n",
    "from pipeline import run as bot\n",
    "from pipeline import bot\n",
    "try:\n    from fast import bot\nexcept ImportError:\n    async def bot(runner_args):\n        pass\n",
    "if True:\n    bot = None\n",
    "from pipeline import *\n",  # may bind it: the bot's import tells
    "def broken(:\n",  # the build reports Python's own message
])
def test_every_way_a_bot_py_binds_bot_passes(tmp_path: Path, source: str) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text(source)
    (folder / "pipeline.py").write_text("async def bot(runner_args):\n    pass\n\n\nrun = bot\n")
    (folder / "fast.py").write_text("async def bot(runner_args):\n    pass\n")
    assert read(folder).path == folder


def test_a_pinned_requirements_file_is_read_with_extras_hashes_and_continuations(tmp_path: Path) -> None:
    found = read(project(tmp_path, requirements=(
        "# generated\n--index-url https://pypi.org/simple\n"
        "pipecat-ai[daily,silero]==1.15.2 \\\n    --hash=sha256:abc\n"
        "python-dotenv>=1.0  # not a pin, fine\n")))
    assert (found.kind, str(found.pipecat_version)) == ("requirements", "1.15.2")


@pytest.mark.parametrize("line", ["pipecat-ai[daily]>=1.14", "pipecat-ai", "pipecat-ai==1.*"])
def test_requirements_that_do_not_pin_pipecat_exactly_are_refused(tmp_path: Path, line: str) -> None:
    assert "does not pin pipecat-ai exactly" in refusal(project(tmp_path, requirements=line + "\n"))


def test_requirements_pinning_an_unsupported_pipecat_are_refused(tmp_path: Path) -> None:
    message = refusal(project(tmp_path, requirements="pipecat-ai[daily]==1.12.0\n"))
    assert "pipecat-ai 1.12.0" in message and "requirements.txt" in message


def test_exclude_packages_are_read_from_tool_voicefleet_and_checked(tmp_path: Path) -> None:
    tool = '\n[tool.voicefleet]\nexclude-packages = ["numba"]\n'
    assert read(project(tmp_path / "a", pyproject=tool)).exclude_packages == ("numba",)
    assert "the bot host needs it" in refusal(project(tmp_path / "b", pyproject=tool.replace("numba", "pipecat-ai")))
    assert "does not have" in refusal(project(tmp_path / "c", pyproject=tool.replace("numba", "torch")))
    assert "list of package names" in refusal(project(tmp_path / "d", pyproject=tool.replace('["numba"]', '"numba"')))


def test_a_bake_py_is_noticed(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bake.py").write_text("print('baked')\n")
    assert read(folder).has_bake


def test_the_command_prints_the_packages_to_leave_out_or_the_refusal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool = '\n[tool.voicefleet]\nexclude-packages = ["numba"]\n'
    assert bot_project.main([str(project(tmp_path / "a", pyproject=tool)), "--exclude-packages"]) == 0
    assert capsys.readouterr().out == "numba\n"
    assert bot_project.main([str(project(tmp_path / "b", pipecat="1.2.0"))]) == 1
    assert "pipecat-ai 1.2.0" in capsys.readouterr().err



@pytest.mark.parametrize("example", ["parrot", "assistant"])
def test_the_examples_are_complete_projects_the_image_can_be_built_from(example: str) -> None:
    found = read(ROOT / "examples" / example)
    assert found.kind == "uv" and found.pipecat_version in bot_project.SUPPORTED_PIPECAT
    assert set(found.exclude_packages) == {"numba", "llvmlite", "resampy", "opencv-python-headless"}


def test_the_default_bots_image_carries_every_transport_phone_calls_included() -> None:
    assert read(ROOT / "examples" / "parrot").transports == ("daily", "webrtc", "websocket")


def test_the_hosts_own_requirements_are_pinned_at_the_repositorys_locked_versions() -> None:
    """images/install_project.sh adds these to a project that lacks them: the versions the tests ran."""
    import tomllib

    locked = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    pins = [line for line in (ROOT / "images" / "host_requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert pins and all(locked[name] == version for name, version in (pin.split("==") for pin in pins))


def test_the_transports_bot_py_imports_at_module_level_are_kept_in_every_image(tmp_path: Path) -> None:
    """A module-level import runs in every image the bot runs in; one inside a function only where
    that function runs (the parrot's shape). The images leave out only the packages of the others."""
    folder = project(tmp_path, extra=(("aiortc", "1.14.0"),))
    (folder / "bot.py").write_text(
        "import os\n"
        "try:\n    from pipecat.transports.daily.transport import DailyParams\nexcept ImportError:\n    pass\n"
        "from pipecat.runner.types import SmallWebRTCRunnerArguments\n"
        "async def bot(runner_args):\n    from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport\n")
    found = read(folder)
    assert [(built.name, built.line) for built in found.imported] == [("daily", 3)]
    assert found.leaves_out("bot-webrtc") == () and found.keeps("bot-webrtc") is not None
    assert found.leaves_out("bot") == ("aiortc", "av", "aioice", "pylibsrtp") and found.keeps("bot") is None
    assert bot_project.main([str(folder), "--leaves-out", "bot-webrtc"]) == 0


def test_a_transports_own_package_imported_at_module_level_is_kept_too(tmp_path: Path) -> None:
    """Not only Pipecat's transport modules: a bot's own `from daily import CallClient` or `import av`
    runs in every image as well, so those images keep the package."""
    folder = project(tmp_path, extra=(("aiortc", "1.14.0"),))
    (folder / "bot.py").write_text(
        "from daily import CallClient\nimport av\n"
        "from pipecat.runner.types import SmallWebRTCRunnerArguments\n"
        "async def bot(runner_args):\n    pass\n")
    found = read(folder)
    assert [(built.name, built.line) for built in found.imported] == [("daily", 1), ("webrtc", 2)]
    assert found.leaves_out("bot-webrtc") == () and found.leaves_out("bot") == ()


def test_exclude_packages_refuses_a_package_the_bot_imports_under_another_name(tmp_path: Path) -> None:
    tool = '\n[tool.voicefleet]\nexclude-packages = ["acme-speech-sdk"]\n'
    folder = project(tmp_path, pyproject=tool, extra=(("acme-speech-sdk", "1.0.0"),))
    (folder / "bot.py").write_text("import acme\n\n\n" + BOT)
    site_packages = folder / ".venv" / "lib" / "python3.11" / "site-packages"
    (site_packages / "acme_speech_sdk-1.0.0.dist-info").mkdir(parents=True)
    (site_packages / "acme_speech_sdk-1.0.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-speech-sdk\nVersion: 1.0.0\n")
    (site_packages / "acme_speech_sdk-1.0.0.dist-info" / "RECORD").write_text(
        "acme/__init__.py,,\nacme_speech_sdk-1.0.0.dist-info/METADATA,,\nacme_speech_sdk-1.0.0.dist-info/RECORD,,\n")
    message = refusal(folder)
    assert f"leaves out acme-speech-sdk, which {folder / 'bot.py'}:1 imports (`acme`)" in message, message


def test_exclude_packages_refuses_a_package_that_a_package_the_bot_imports_depends_on(tmp_path: Path) -> None:
    tool = '\n[tool.voicefleet]\nexclude-packages = ["numba"]\n'
    folder = project(tmp_path, pyproject=tool)
    lock = (folder / "uv.lock").read_text().replace(
        'name = "my-bot"\nversion = "0.1.0"\nsource = { virtual = "." }\n',
        'name = "my-bot"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "pipecat-ai" }, { name = "librosa" }]\n')
    (folder / "uv.lock").write_text(lock + '\n[[package]]\nname = "librosa"\nversion = "0.11.0"\n'
                                    'source = { registry = "https://pypi.org/simple" }\n'
                                    'dependencies = [{ name = "numba" }]\n')
    assert read(folder).exclude_packages == ("numba",)  # nothing the bot imports needs it
    (folder / "bot.py").write_text("import librosa\n\n\n" + BOT)
    message = refusal(folder)
    assert f"leaves out numba through librosa, which {folder / 'bot.py'}:1 imports (`librosa`)" in message, message


def test_a_src_layout_package_the_bot_imports_is_refused_before_the_image_fails_on_it(tmp_path: Path) -> None:
    """`uv init --package` puts the code in src/: `uv run` installs the project so it imports there, but
    the image installs the dependencies alone and puts only bot.py's folder on the path."""
    folder = project(tmp_path)
    (folder / "bot.py").write_text("from my_bot.pipeline import build\n\n\n" + BOT)
    (folder / "src" / "my_bot").mkdir(parents=True)
    (folder / "src" / "my_bot" / "__init__.py").write_text("")
    (folder / "src" / "my_bot" / "pipeline.py").write_text("def build():\n    pass\n")
    message = refusal(folder)
    assert f"{folder / 'bot.py'}:1 imports `my_bot`" in message and "Move src/my_bot beside bot.py" in message
    (folder / "src" / "my_bot").rename(folder / "my_bot")  # moved as told: the image finds it beside bot.py
    assert "my_bot" not in read(folder).imports  # its own package now, followed like video.py


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").iterdir()
                                           if (p / "bot.py").is_file() and (p / "uv.lock").is_file()))
def test_every_example_bot_project_is_one_a_stack_can_build(example: str) -> None:
    """Each example is a bot project a stack's image is built from: read as the build reads it (its
    exclude-packages included, which must not leave out what a package it imports needs)."""
    project = read(ROOT / "examples" / example)
    assert project.kind == "uv" and project.transports
