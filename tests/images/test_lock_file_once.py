"""images/lock_closure.py `locked_packages`: one parse of a uv.lock shared by its readers, parsed again
once its content changes (a plan after an edited lock never sees the old one, even one edited to the
same size within the file system's clock tick)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from images.lock_closure import locked_packages

LOCK = """version = 1
[[package]]
name = "{name}"
version = "1.0"
source = {{ registry = "https://pypi.org/simple" }}
"""


def test_an_edited_lock_is_read_again(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(LOCK.format(name="first"))
    assert [p["name"] for p in locked_packages(lock)] == ["first"]
    assert locked_packages(lock) is locked_packages(lock)  # the same content: one parse
    stat = lock.stat()
    lock.write_text(LOCK.format(name="secnd"))  # the same size, and the same time below
    os.utime(lock, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert [p["name"] for p in locked_packages(lock)] == ["secnd"]


def test_the_bot_project_reader_and_the_plans_later_reads_share_one_parse(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a bot project (its locked versions, its exclude-packages checked against the lock) and the
    plan's later reads of the same lock (each image's size) parse the lock once: a bot's uv.lock is
    hundreds of kB, a tenth of a second of CPU for each parse."""
    from images.bot_project import read

    folder = tmp_path / "bot"
    folder.mkdir()
    (folder / "bot.py").write_text("async def bot(runner_args):\n    pass\n")
    (folder / "pyproject.toml").write_text('[project]\nname = "my-bot"\nversion = "0.1.0"\n'
                                           '[tool.voicefleet]\nexclude-packages = ["numba"]\n')
    packages = (("pipecat-ai", "1.14.0"), ("onnxruntime", "1.23.2"), ("daily-python", "0.21.0"), ("numba", "0.62.1"))
    (folder / "uv.lock").write_text('version = 1\n[[package]]\nname = "my-bot"\nversion = "0.1.0"\n'
                                    'source = { virtual = "." }\n' + "".join(
                                        f'[[package]]\nname = "{name}"\nversion = "{version}"\n'
                                        'source = { registry = "https://pypi.org/simple" }\n'
                                        for name, version in packages))
    parses: list[str] = []
    loads = tomllib.loads

    def counted(text: str, **options: Any) -> dict[str, Any]:  # the real parser, each call counted
        parses.append(text)
        return loads(text, **options)

    monkeypatch.setattr(tomllib, "loads", counted)
    assert read(folder).exclude_packages == ("numba",)
    assert [p["name"] for p in locked_packages(folder / "uv.lock")][:2] == ["my-bot", "pipecat-ai"]
    assert sum("[[package]]" in text for text in parses) == 1
