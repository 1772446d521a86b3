"""What a bot project's own code imports, read from its files (never run): bot.py and the project's own
modules it reaches, whatever their shape; an import guarded by `except ImportError` is optional."""

from __future__ import annotations

from pathlib import Path

from images.project_imports import import_names, imported_modules
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
