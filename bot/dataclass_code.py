"""Bytecode for the functions `@dataclass` generates, kept between starts like a `.pyc`.

`dataclasses` writes each class's `__init__`, `__repr__`, `__eq__`… as source text and compiles
it with `exec` when the class is defined. Pipecat defines ~900 of them before the bot can answer
an offer (its frames alone are ~200 dataclasses), and compiling that text was ~100 ms of the
bot's ~700 ms of start-up CPU (bench/bot_import_steps.py), every start, .pyc files or not.

`install()` (bot/__main__.py, before anything defines a dataclass) gives the `dataclasses` module
an `exec` of its own that looks the text up in this cache first; the code object is exactly what
`compile` makes of that text (a dict keyed by the full text, marshalled as `.pyc` files are), and
it runs with the same globals and locals, so the classes are identical. `finish()` (bot/app.py,
once the imports are done) removes the hook and, when there were misses and Python may write
bytecode, saves the cache for the next start.

The file follows Python's own bytecode rules: beside bot/'s `.pyc` files (`bot/__pycache__/`, or
under `PYTHONPYCACHEPREFIX`), tagged with the interpreter's magic number, never written under
`PYTHONDONTWRITEBYTECODE` (the image fills it at build time, as it compiles its `.pyc` files), and
a missing, unreadable or foreign file is only a slower start.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib.util
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Any

# A cache that outgrows this (dataclass definitions changed many times) is rewritten with only the
# current start's entries.
MAX_ENTRIES = 8000


def cache_path() -> Path:
    """`bot/__pycache__/dataclass-code.<tag>.marshal`, or its mirror under sys.pycache_prefix."""
    beside_pyc = Path(importlib.util.cache_from_source(__file__))
    return beside_pyc.with_name(f"dataclass-code.{sys.implementation.cache_tag}.marshal")


class DataclassCodeCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.codes = _load(path)
        self.used: set[str] = set()
        self.misses = 0

    def exec(self, source: Any, globals: Any = None, locals: Any = None) -> None:
        """`exec` as `dataclasses` calls it: source text, globals, a namespace to fill."""
        if isinstance(source, str):
            code = self.codes.get(source)
            if code is None:
                # dont_inherit: compiled as dataclasses' own `exec` would, without this module's
                # `from __future__ import annotations` (it would turn `-> None` into "None").
                code = compile(source, "<string>", "exec", dont_inherit=True)
                self.codes[source] = code
                self.misses += 1
            self.used.add(source)
            source = code
        builtins.exec(source, globals, locals)  # noqa: S102 - what dataclasses itself runs, unchanged

    def save(self) -> bool:
        """Writes the cache (atomically: bots may start side by side); False when it may not."""
        if not self.misses or sys.dont_write_bytecode:
            return False
        codes = self.codes
        if len(codes) > MAX_ENTRIES:
            codes = {text: code for text, code in codes.items() if text in self.used}
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(importlib.util.MAGIC_NUMBER + marshal.dumps(codes))
            os.replace(temporary, self.path)
        except OSError:  # a read-only tree (an image run without its cache): only a slower start
            temporary.unlink(missing_ok=True)
            return False
        return True


_installed: DataclassCodeCache | None = None


def install(path: Path | None = None) -> DataclassCodeCache:
    """Routes the `exec` calls of `dataclasses` through the cache (once per process)."""
    global _installed
    if _installed is None:
        _installed = DataclassCodeCache(path or cache_path())
        # A module global shadows the builtin for the code of `dataclasses` only.
        dataclasses.exec = _installed.exec  # type: ignore[attr-defined]
    return _installed


def finish() -> DataclassCodeCache | None:
    """Removes the hook (later dataclasses are made as without it) and saves what was missing."""
    global _installed
    cache, _installed = _installed, None
    if cache is None:
        return None
    if getattr(dataclasses, "exec", None) == cache.exec:
        del dataclasses.exec  # type: ignore[attr-defined]
    cache.save()
    return cache


def _load(path: Path) -> dict[str, CodeType]:
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    magic = importlib.util.MAGIC_NUMBER
    if not data.startswith(magic):
        return {}  # another interpreter version's bytecode
    try:
        # Trusted as the .pyc files beside it are: same directory, same writer (this module).
        codes = marshal.loads(data[len(magic) :])  # noqa: S302
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(codes, dict):
        return {}
    return {text: code for text, code in codes.items() if isinstance(text, str) and isinstance(code, CodeType)}
