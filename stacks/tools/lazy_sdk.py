"""The clouds' Pulumi SDK service packages (`pulumi_gcp.compute`, `pulumi_azure_native.network`), each
module of one imported when a name of it is first used, for `voicefleet config check --stack`.

pulumi-gcp, pulumi-azure-native and pulumi-aws generate each service package as an `__init__.py` of
`from .<module> import *` lines, one a resource or function, so the first use of one name imports them
all: `pulumi_gcp.compute` is 287 modules and 1.1 s of CPU, of which the resources a stack uses and the
package's shared `_inputs` and `outputs` are 0.5 s. Under `lazy_sdks()` such a package starts empty, and
a name is bound from the module its `__init__.py` would have taken it from: the last of its star imports
whose `__all__` (read from the module, not imported) names it; a star import of the package or `dir()`
binds them all first. Each module's names are bound once and never over a name the program replaced or
deleted, and a function's module the program imports later (`from pulumi_gcp.compute.get_network import
GetNetworkResult`) leaves the function on the package, as the eager package, filled before the program ran,
has them. A package of another shape, one whose module has no single `__all__` to read, or one whose own
module is half-run when the package is first used (a program that imports `pulumi_gcp.compute.network`
first: Python's star import then binds that module's names so far) is imported whole, as without this, so a
name means the same object either way (tests/infra/tools/test_lazy_sdk.py). What differs: a module the
program never uses is never imported, so one that fails to import fails only `pulumi up`; and `vars()` of
the package holds only the names bound so far, and its `__getattr__` and `__dir__`.
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
import threading
import typing
import weakref
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
    all of them when a star import or `dir()` asks for every name. A module's names are bound once, and
    never over a name the package holds by then: one the program replaced or deleted stays so, as it would
    in the package its `__init__.py` filled before the program ran."""

    def __init__(self, module: ModuleType, sources: dict[str, str], submodules: Sequence[str]) -> None:
        self.module, self.sources, self.submodules = module, sources, tuple(submodules)
        self.exports: dict[str, list[str]] = {}
        for name, source in sources.items():
            self.exports.setdefault(source, []).append(name)
        self.bound: set[str] = set()  # the modules whose names were bound
        self.attached: set[str] = set()  # the submodules Python has set on the package
        self.whole = False
        self.lock = threading.RLock()  # a second thread's dir() waits for every name; re-entry is safe

    def bind(self, source: str) -> ModuleType:
        """Imports `source` and binds the names the package takes from it, the first time."""
        loaded = importlib.import_module(f"{self.module.__name__}.{source}")
        if source not in self.bound:
            held = vars(self.module)
            for each in self.exports.get(source, ()):
                if each not in held:
                    held[each] = getattr(loaded, each)
            self.bound.add(source)  # after: another thread that finds it bound finds its names
        return loaded

    def bind_all(self) -> None:
        """Every module imported and every name bound, in the order of the package's `__init__.py`."""
        with self.lock:
            if not self.whole:
                for each in self.submodules:
                    self.bind(each)
                self.whole = True

    def attribute(self, name: str) -> Any:
        package = self.module.__name__
        if name == "__all__":
            # A star import asks first; as the eager package, this one has none, and Python then reads the
            # package's __dict__, which must hold every name by then.
            self.bind_all()
        elif name in self.sources and self.sources[name] not in self.bound:
            self.bind(self.sources[name])
            return getattr(self.module, name)
        elif name in self.submodules and name not in self.attached:
            return importlib.import_module(f"{package}.{name}")  # binds itself on the package
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def attach(self, name: str, value: object) -> object:
        """What the package holds for `name` once `value` is set: _KEEP where it keeps what it holds. Python
        sets a submodule on its package once, when it is first imported; the eager package had every one
        imported and bound over by its own exports (`get_project`'s function) before the program could
        replace one, so the later import of one leaves what the package holds or the export."""
        submodule = sys.modules.get(f"{self.module.__name__}.{name}", _KEEP)
        if name in self.attached or value is not submodule:
            return value
        self.attached.add(name)
        if name in vars(self.module):
            return _KEEP
        return getattr(value, name) if self.sources.get(name) == name else value

    def names(self) -> list[str]:
        """The package's `dir()`: every name, as the eager package's, without this one's own hooks."""
        self.bind_all()
        return sorted(name for name in vars(self.module) if name not in _HOOKS)


_HOOKS = ("__getattr__", "__dir__")
_KEEP = object()
_PACKAGES: weakref.WeakKeyDictionary[ModuleType, _Package] = weakref.WeakKeyDictionary()


class _LazyPackage(ModuleType):
    """A service package run lazily: what is set on it or deleted goes through its _Package. (Its
    `__getattr__` and `__dir__` are in its __dict__, where `ModuleType.__getattribute__` called by name, as
    pulumi's lazy_import does, finds them too.)"""

    def __setattr__(self, name: str, value: Any) -> None:
        held = _PACKAGES[self].attach(name, value)
        if held is not _KEEP:
            super().__setattr__(name, held)

    def __delattr__(self, name: str) -> None:
        if name not in vars(self):  # the eager package holds every name: one not yet bound is bound first
            with contextlib.suppress(AttributeError):
                _PACKAGES[self].attribute(name)
        super().__delattr__(name)


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
        # A submodule's name exported by another module is the export or the submodule by the order of their
        # lines; no generated package has one, so such a package is imported whole.
        if found is None or any(found.get(name, name) != name for name in submodules):
            self.eager.exec_module(module)
            return
        # What the generated __init__.py binds beside its star imports, and what running it would add.
        module.__builtins__ = builtins.__dict__  # type: ignore[attr-defined]
        module._builtins = builtins  # type: ignore[attr-defined]
        module.typing = typing  # type: ignore[attr-defined]
        module._utilities = importlib.import_module(  # type: ignore[attr-defined]
            importlib.util.resolve_name(above, module.__name__) + "._utilities")
        package = _PACKAGES[module] = _Package(module, found, submodules)
        module.__getattr__ = package.attribute  # type: ignore[method-assign]
        module.__dir__ = package.names  # type: ignore[method-assign]
        module.__class__ = _LazyPackage  # it holds after lazy_sdks(): a submodule imported then still binds so


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
