"""What a bot project's own code imports, read from its files (never run): bot.py and the project's own
modules it reaches, whatever their shape; an import guarded by `except ImportError` is optional."""

from __future__ import annotations

from pathlib import Path

from images.project_imports import import_names, imported_modules, importing
from tests.images.test_bot_project import ROOT


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_the_projects_own_modules_are_followed_and_only_foreign_modules_are_named(tmp_path: Path) -> None:
    project = write(tmp_path, {
        "bot.py": "import helpers\nfrom vision.frames import shrink\nfrom .tools import clock\n\n\n"
                  "async def bot(runner_args):\n    import numpy\n",
        "helpers.py": "from loguru import logger\n",
        "vision/__init__.py": "",
        "vision/frames.py": "from . import color\n\nimport cv2\n",
        "vision/color.py": "from PIL import Image\n",
        "tools/clock.py": "import pendulum\n",  # a folder without __init__.py: a namespace package of the project
        "unused.py": "import torch\n",  # never imported: not needed
    })
    found = imported_modules(project)
    assert {name: found[name].where for name in ("loguru", "cv2", "PIL", "numpy", "pendulum")} == {
        "loguru": "helpers.py:1", "cv2": "vision/frames.py:3", "PIL": "vision/color.py:1", "numpy": "bot.py:7",
        "pendulum": "tools/clock.py:1"}
    assert not {"helpers", "vision", "tools", "torch"} & set(found), found


def test_an_import_that_may_fail_is_not_needed(tmp_path: Path) -> None:
    project = write(tmp_path, {"bot.py": (
        "try:\n    import cv2\nexcept ImportError:\n    cv2 = None\n"
        "try:\n    import av\nexcept (ModuleNotFoundError, OSError):\n    av = None\n"
        "try:\n    import numba\nexcept ValueError:\n    numba = None\n")})
    assert sorted(imported_modules(project)) == ["numba"]


def test_a_file_that_cannot_be_parsed_counts_nothing(tmp_path: Path) -> None:
    project = write(tmp_path, {"bot.py": "import helpers\nimport cv2\n", "helpers.py": "def broken(:\n"})
    assert sorted(imported_modules(project)) == ["cv2"]


def test_the_parrot_imports_nothing_it_leaves_out() -> None:
    found = imported_modules(ROOT / "examples" / "parrot")
    assert "pipecat" in found and "numpy" in found  # through its own parrot.py
    for package in ("numba", "llvmlite", "resampy", "opencv-python-headless"):
        assert not set(import_names(package)) & set(found), package


def test_a_distributions_import_name() -> None:
    assert import_names("opencv-python-headless") == ("cv2",)
    assert import_names("Pillow") == ("PIL",)
    assert import_names("llvmlite") == ("llvmlite",)
    assert import_names("google_crc32c") == ("google_crc32c",)


def test_a_namespace_package_with_its_modules_in_subfolders_is_followed(tmp_path: Path) -> None:
    project = write(tmp_path, {"bot.py": "from helpers.vision.cam import frames\n",
                               "helpers/vision/cam.py": "import cv2\n"})  # no __init__.py, no module at helpers/
    found = imported_modules(project)
    assert found["cv2"].where == "helpers/vision/cam.py:1" and "helpers" not in found, found


def test_a_module_imported_by_a_literal_name_at_run_time_is_needed(tmp_path: Path) -> None:
    project = write(tmp_path, {"bot.py": (
        "import importlib\nfrom importlib import import_module\n\n\nasync def bot(runner_args, name='x'):\n"
        "    cv2 = importlib.import_module('cv2')\n    av = __import__('av')\n    np = import_module('numpy.fft')\n"
        "    chosen = importlib.import_module(name)\n    local = importlib.import_module('.x', 'pkg')\n")})
    found = imported_modules(project)
    assert {name: found[name].where for name in ("cv2", "av", "numpy")} == {
        "cv2": "bot.py:6", "av": "bot.py:7", "numpy": "bot.py:8"}


def installed(project: Path, distribution: str, *files: str) -> None:
    """A distribution installed in the project's own .venv as an installer leaves it: its dist-info
    with METADATA and a RECORD listing every file it put in site-packages."""
    site_packages = project / ".venv" / "lib" / "python3.11" / "site-packages"
    name, version = distribution.replace("-", "_"), "1.0.0"
    info = f"{name}-{version}.dist-info"
    record = [*files, f"{info}/METADATA", f"{info}/RECORD"]
    write(site_packages, {**{file: "" for file in files}, f"{info}/METADATA":
                          f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n",
                          f"{info}/RECORD": "".join(f"{file},,\n" for file in record)})


def test_what_a_distribution_provides_is_read_from_its_installed_record(tmp_path: Path) -> None:
    project = write(tmp_path, {"bot.py": "import acme\nfrom google.genai import types\n"})
    installed(project, "acme-speech-sdk", "acme/__init__.py", "acme/stream.py", "acme.libs/libacme-1a2b.so")
    installed(project, "google-cloud-speech", "google/cloud/speech/__init__.py",
              "google/cloud/speech_v1/__init__.py", "google/cloud/speech_v1/client.py")
    assert import_names("acme-speech-sdk", project) == ("acme",)
    # a portion of the `google` namespace is not all of it: the bot's google.genai needs none of it
    assert import_names("google-cloud-speech", project) == ("google.cloud.speech", "google.cloud.speech_v1")
    found = imported_modules(project)
    assert importing("acme-speech-sdk", found, project) == found["acme"]
    assert importing("google-cloud-speech", found, project) is None
    assert importing("acme-speech-sdk", found) is None  # not installed here: named by its distribution's name


def test_a_distribution_installed_where_the_plan_runs_is_read_from_its_record(tmp_path: Path) -> None:
    project = write(tmp_path, {"bot.py": "from deepgram import DeepgramClient\n"})  # deepgram-sdk, via Pipecat
    assert importing("deepgram-sdk", imported_modules(project)) is not None
