"""images/lock_closure.py `locked_packages`: one parse of a uv.lock shared by its readers, parsed again
once its content changes (a plan after an edited lock never sees the old one, even one edited to the
same size within the file system's clock tick)."""

from __future__ import annotations

import os
from pathlib import Path

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
