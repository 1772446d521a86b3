"""The version of a local bot's files: what an edit changes, what it ignores, how often it is read."""

from __future__ import annotations

import os
from pathlib import Path

from dispatcher.machines.local.bot_version import MAX_FILES, TTL_SECONDS, BotFilesVersion, fingerprint


def project(tmp_path: Path) -> Path:
    (tmp_path / "bot.py").write_text("async def bot(runner_args): pass\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    return tmp_path / "bot.py"


def touch(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later save, whatever the clock


def test_an_edit_of_the_file_a_module_beside_it_or_the_lock_changes_it(tmp_path):
    bot_file = project(tmp_path)
    seen = {fingerprint(bot_file)}
    for path, text in ((bot_file, "async def bot(runner_args): return\n"), (tmp_path / "helpers.py", "X = 2\n"),
                       (tmp_path / "sub" / "tools.py", "Y = 1\n"), (tmp_path / "uv.lock", "version = 1\n")):
        touch(path, text)
        seen.add(fingerprint(bot_file))
    assert len(seen) == 5


def test_caches_virtualenvs_and_other_files_do_not(tmp_path):
    bot_file = project(tmp_path)
    before = fingerprint(bot_file)
    for name in (".venv/lib/x.py", "__pycache__/bot.cpython-311.pyc", "node_modules/a.py", "notes.txt",
                 "venv/lib/site.py"):
        touch(tmp_path / name, "z")
    assert fingerprint(bot_file) == before


def test_it_is_read_again_after_its_ttl_and_when_the_clock_steps_back(tmp_path):
    bot_file = project(tmp_path)
    now = [100.0]
    version = BotFilesVersion(bot_file, clock=lambda: now[0])
    first = version.current()
    touch(bot_file, "async def bot(runner_args): return\n")
    assert version.current() == first  # within the TTL: the last read
    now[0] += TTL_SECONDS
    second = version.current()
    assert second != first
    touch(tmp_path / "helpers.py", "X = 3\n")
    now[0] -= 60
    assert version.current() != second


def test_a_huge_folder_is_read_only_up_to_its_bound(tmp_path):
    bot_file = project(tmp_path)
    for i in range(MAX_FILES + 10):
        (tmp_path / f"m{i:05d}.py").write_text("")
    before = fingerprint(bot_file)
    touch(tmp_path / "m99999.py", "past the bound")  # sorted last: not read
    assert fingerprint(bot_file) == before
