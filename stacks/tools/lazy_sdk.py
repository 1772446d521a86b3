"""The clouds' Pulumi SDK service packages (`pulumi_gcp.compute`, `pulumi_azure_native.network`), each
module of one imported when a name of it is first used, for `voicefleet config check --stack`.

pulumi-gcp, pulumi-azure-native and pulumi-aws generate each service package as an `__init__.py` of
`from .<module> import *` lines, one a resource or function, so the first use of one name imports them
all: `pulumi_gcp.compute` is 287 modules and 1.1 s of CPU, of which the resources a stack uses and the
package's shared `_inputs` and `outputs` are 0.5 s. Under `lazy_sdks()` such a package starts empty, and
a name is bound from the module its `__init__.py` would have taken it from: the last of its star imports
whose `__all__` (read from the module, not imported) names it; a star import of the package or `dir()`
binds them all first. A package of another shape, one whose module has no single `__all__` to read, or one
whose own module is half-run when the package is first used (a program that imports
`pulumi_gcp.compute.network` first: Python's star import then binds that module's names so far) is
imported whole, as without this, so a name means the same object either way (tests/infra/tools/test_lazy_sdk.py).
A module the program never uses is never imported, so one that fails to import fails only `pulumi up`.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

SDKS = ("pulumi_gcp.", "pulumi_azure_native.", "pulumi_aws.")
# Every line of a generated service package's __init__.py; a package with any other line is imported whole.
_LINE = re.compile(r"#.*|import builtins as _builtins|import typing|from (\.\.+) import _utilities"
                   r"|from \.(\w+) import \*|from \. import (\w+)|")
_ALL = re.compile(rb"^__all__ = \[([^\]]*)\]", re.MULTILINE)
_QUOTED = re.compile(r"""['"](\w+)['"]""")


def exported(module: Path) -> tuple[str, ...] | None:
    """The names `from module import *` binds, from its `__all__` literal; None where it has none, or where
    `__all__` is named again (`__all__ += [...]`, a second assignment): only running the module would tell."""
    text = module.read_bytes()
    found = _ALL.search(text) if text.count(b"__all__") == 1 else None
    return None if found is None else tuple(_QUOTED.findall(found[1].decode("utf-8")))


def sources(folder: Path, star: Sequence[str]) -> dict[str, str] | None:
    """Each name's module in a package of `star` imports, the last that exports it winning (as in its
    __init__.py); None where a module's exports cannot be read."""
    found: dict[str, str] = {}
    for name in star:
        path = folder / f"{name}.py"
        names = exported(path) if path.is_file() else None
        if names is None:
            return None
        found |= dict.fromkeys(names, name)
    return found


class _Package:
    """One service package's names, each bound from its module on first use (the package's `__getattr__`),
    all of them when a star import or `dir()` asks for every name."""

    def __init__(self, module: ModuleType, sources: dict[str, str], submodules: Sequence[str]) -> None:
        self.module, self.sources, self.submodules = module, sources, tuple(submodules)
        self.exports: dict[str, list[str]] = {}
        for name, source in sources.items():
            self.exports.setdefault(source, []).append(name)
        self.whole = False

    def bind(self, source: str) -> ModuleType:
        """Imports `source` and binds the names the package takes from it."""
        loaded = importlib.import_module(f"{self.module.__name__}.{source}")
        # Importing it bound its own name (`get_project`) on the package; its exports come after, as
        # `from .get_project import *` does, and the function of that name wins.
        for each in self.exports.get(source, ()):
            setattr(self.module, each, getattr(loaded, each))
        return loaded

    def bind_all(self) -> None:
        """Every module imported and every name bound, in the order of the package's `__init__.py`."""
        if not self.whole:
            self.whole = True
            for each in self.submodules:
                self.bind(each)

    def attribute(self, name: str) -> Any:
        package = self.module.__name__
        if name == "__all__":
            # A star import asks first; as the eager package, this one has none, and Python then reads the
            # package's __dict__, which must hold every name by then.
            self.bind_all()
        elif name in self.sources:
            self.bind(self.sources[name])
            return getattr(self.module, name)
        elif name in self.submodules:
            return importlib.import_module(f"{package}.{name}")  # binds itself on the package
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def names(self) -> list[str]:
        """The package's `dir()`: every name, as the eager package's, without this one's own hooks."""
        self.bind_all()
        return sorted(name for name in vars(self.module) if name not in _HOOKS)


_HOOKS = ("__getattr__", "__dir__")


def _half_run(package: str, modules: Sequence[str]) -> bool:
    """Whether one of the package's `modules` is being imported now: the program imported it first, and its
    own `from . import outputs` is what runs the package (pulumi's lazy_import defers it to the first use)."""
    for name in modules:
        module = sys.modules.get(f"{package}.{name}")
        # CPython marks a module's spec so while its code runs (importlib._bootstrap._load_unlocked).
        if module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False):
            return True
    return False


class _Loader(importlib.abc.Loader):
    """The package's own loader, but for a generated service package run while lazy_sdks() is on: its names
    bound as they are used."""

    def __init__(self, eager: importlib.abc.Loader) -> None:
        self.eager = eager

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.eager.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # pulumi's lazy_import runs a package on its first use, which can come after lazy_sdks() (a plan in
        # the process that ran a check): then it is imported as Python imports it.
        if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
            self.eager.exec_module(module)
            return
        origin = Path(module.__file__ or "")
        star: list[str] = []
        submodules: list[str] = []
        above = ""
        for line in origin.read_text(encoding="utf-8").splitlines():
            match = _LINE.fullmatch(line)
            if match is None:  # another shape (a package's `config`): imported as Python imports it
                self.eager.exec_module(module)
                return
            above = match[1] or above
            star += [match[2]] if match[2] else []
            submodules += [match[2] or match[3]] if match[2] or match[3] else []
        # A star import of a half-run module binds the names it has so far, not its __all__: only running
        # the __init__.py gives the package Python gives the program (it lacks that module's names).
        found = sources(origin.parent, star) if star and above and not _half_run(module.__name__, star) else None
        if found is None:
            self.eager.exec_module(module)
            return
        # What the generated __init__.py binds beside its star imports, and what running it would add.
        module.__builtins__ = builtins.__dict__  # type: ignore[attr-defined]
        module._builtins = builtins  # type: ignore[attr-defined]
        module.typing = typing  # type: ignore[attr-defined]
        module._utilities = importlib.import_module(  # type: ignore[attr-defined]
            importlib.util.resolve_name(above, module.__name__) + "._utilities")
        package = _Package(module, found, submodules)
        module.__getattr__ = package.attribute  # type: ignore[method-assign]
        module.__dir__ = package.names  # type: ignore[method-assign]


class _Finder(importlib.abc.MetaPathFinder):
    """Finds an SDK's service package as Python's path finder does, and gives it _Loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(SDKS):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if (spec is None or spec.submodule_search_locations is None or spec.loader is None
                or not (spec.origin or "").endswith("__init__.py")):
            return None  # a module, or a package Python finds otherwise: the next finders' as ever
        spec.loader = _Loader(spec.loader)
        return spec


@contextlib.contextmanager
def lazy_sdks() -> Iterator[None]:
    """While inside, an SDK's service package first used binds its names as they are used (and stays so
    after, a star import or `dir()` binding them all). One used before or after is imported whole."""
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
