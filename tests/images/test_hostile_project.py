"""A bot project is read at deploy on the deploying machine and may be hostile: no file of it makes the
check raise a traceback, read outside the project, block, or read more than a bot's source, and its
source is decoded as Python imports it (images/source_file.py, images/bot_entry.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from images.bot_entry import MAX_SHOWN_SIGNATURE, bot_tree
from images.bot_project import read
from images.env_reads import env_reads
from images.project_imports import own_modules
from images.source_file import MAX_DEPENDENCIES_BYTES, MAX_FILE_BYTES, SourceRefused
from tests.images.test_bot_project import BOT, project, refusal

pytestmark = pytest.mark.timeout(60)


def test_a_main_whose_default_nests_deeper_than_unparse_recurses_is_refused_naming_its_parameters(
        tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("async def main(room, greeting=" + "-" * 900 + "1, *, voice):\n    pass\n")
    assert "it has `async def main(room, greeting, voice)`" in refusal(folder)


def test_an_expression_nested_deeper_than_the_parser_goes_is_left_to_the_build(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text(BOT + "x = " + "-" * 5000 + "1\n")
    assert read(folder).path == folder  # the build's own check reports what Python cannot compile


def test_a_mains_long_default_is_quoted_cut_short(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("async def main(room, voices=[" + "'Puck', " * 5000 + "], *, config):\n    pass\n")
    quoted = refusal(folder).split("it has `", 1)[1].split("`", 1)[0]
    assert quoted.startswith("async def main(room, voices=['Puck', 'Puck'") and quoted.endswith("…)")
    assert len(quoted) == len("async def main(…)") + MAX_SHOWN_SIGNATURE


def test_a_bot_py_linked_out_of_the_project_is_refused_naming_the_link(tmp_path: Path) -> None:
    folder = project(tmp_path)
    outside = tmp_path / "elsewhere.py"
    outside.write_text(BOT)
    (folder / "bot.py").unlink()
    (folder / "bot.py").symlink_to(outside)
    message = refusal(folder)
    assert f"{folder / 'bot.py'} is a link to {outside.resolve()}, outside the project" in message, message
    assert "Put the file itself in the project" in message


def test_a_bot_py_linked_inside_the_project_is_read(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "src").mkdir()
    (folder / "bot.py").rename(folder / "src" / "bot.py")
    (folder / "bot.py").symlink_to(Path("src") / "bot.py")
    assert read(folder).path == folder


def test_a_bot_py_larger_than_a_bots_source_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    folder = project(tmp_path)
    with (folder / "bot.py").open("w") as bot:
        bot.write(BOT)
        bot.write(("# " + "x" * 1000 + "\n") * (MAX_FILE_BYTES // 1000 + 1))
    assert f"is over {MAX_FILE_BYTES // 1024} KiB, more than a bot's source" in refusal(folder)


def test_a_bot_py_that_is_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    os.mkfifo(folder / "bot.py")  # a read of it would wait for a writer forever
    with pytest.raises(SourceRefused, match="is not a regular file"):
        bot_tree(folder / "bot.py")


def test_a_bot_py_is_decoded_as_python_imports_it(tmp_path: Path) -> None:
    # UTF-7, which Python honours in a coding line, turns `+AAo-` into a line break: Python's import
    # binds `bot`, where a read as UTF-8 sees one comment.
    source = b"# coding: utf-7\n#+AAo-async def bot(runner_args):+AAo-    pass\n"
    assert "bot" in compile(source, "bot.py", "exec").co_names
    folder = project(tmp_path)
    (folder / "bot.py").write_bytes(source)
    assert read(folder).path == folder


def test_an_own_module_linked_out_of_the_project_is_passed_over_unread(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("import pipeline\n\n" + BOT)
    outside = tmp_path / "secrets_of_the_machine.py"
    outside.write_text("import some_package_of_the_deploying_machine\n")
    (folder / "pipeline.py").symlink_to(outside)
    assert "some_package_of_the_deploying_machine" not in read(folder).imports


def test_the_walk_of_own_modules_parses_a_bounded_number_of_bytes_in_all(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("import first\nimport second\n")
    (folder / "first.py").write_text("# " + "x" * 3000 + "\nimport os\n")
    (folder / "second.py").write_text("import json\n")
    bound = sum((folder / name).stat().st_size for name in ("bot.py", "first.py"))
    assert [path.name for path, _ in own_modules(folder, max_bytes=bound)] == ["bot.py", "first.py"]
    assert [path.name for path, _ in own_modules(folder, max_bytes=bound + 20)] == ["bot.py", "first.py",
                                                                                    "second.py"]


def test_an_own_module_over_the_bound_of_one_file_is_named_unread_by_the_variables_check(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("import generated\n" + BOT)
    (folder / "generated.py").write_text('import os\nos.environ["FAR"]\n' + "# padding\n" * (MAX_FILE_BYTES // 10))
    scanned = env_reads(folder)
    assert scanned.unread == ("generated.py",) and "FAR" not in scanned.reads


def test_a_requirements_file_linked_to_a_file_of_the_machine_is_refused_without_quoting_it(tmp_path: Path) -> None:
    folder = project(tmp_path, requirements="pipecat-ai[daily]==1.14.0\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("API_KEY=sk-not-for-the-log\n")
    (folder / "requirements.txt").unlink()
    (folder / "requirements.txt").symlink_to(credentials)
    message = refusal(folder)
    assert "requirements.txt is a link to" in message and "outside the project" in message, message
    assert "sk-not-for-the-log" not in message


def test_a_requirements_file_that_is_not_utf8_is_refused_naming_the_fix(tmp_path: Path) -> None:
    folder = project(tmp_path, requirements="pipecat-ai[daily]==1.14.0\n")
    (folder / "requirements.txt").write_bytes("# caf\xe9\npipecat-ai[daily]==1.14.0\n".encode("latin-1"))
    assert "requirements.txt is not UTF-8 (byte 5): save it as UTF-8" in refusal(folder)


def test_a_pyproject_larger_than_a_dependency_file_is_refused(tmp_path: Path) -> None:
    folder = project(tmp_path, pyproject="# padding\n" * (MAX_DEPENDENCIES_BYTES // 10 + 1))
    assert f"pyproject.toml is over {MAX_DEPENDENCIES_BYTES // 1024} KiB" in refusal(folder)
