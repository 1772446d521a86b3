"""The clouds' Pulumi SDK service packages (`pulumi_gcp.compute`, `pulumi_azure_native.network`), each
module of one imported when a name of it is first used, for `voicefleet config check --stack`.

pulumi-gcp, pulumi-azure-native and pulumi-aws generate each service package as an `__init__.py` of
`from .<module> import *` lines, one a resource or function, so the first use of one name imports them
all: `pulumi_gcp.compute` is 287 modules and 1.1 s of CPU, of which the resources a stack uses and the
package's shared `_inputs` and `outputs` are 0.5 s. Under `lazy_sdks()` such a package starts empty, and
a name is bound from the module its `__init__.py` would have taken it from: the last of its star imports
whose `__all__` (read from the module's head, not imported) names it. A package of another shape, or one
whose module has no `__all__` to read, is imported whole, as without this, so a name means the same
object either way (tests/infra/tools/test_lazy_sdk.py).
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
_ALL = re.compile(r"^__all__ = \[([^\]]*)\]", re.MULTILINE)
_QUOTED = re.compile(r"""['"](\w+)['"]""")
_HEAD = 8192  # a resource's __all__ is within its first lines; _inputs' lists thousands of names


def exported(module: Path) -> tuple[str, ...] | None:
    """The names `from module import *` binds, from its `__all__` literal; None where it has none."""
    with module.open(encoding="utf-8") as source:
        text = source.read(_HEAD)
        found = _ALL.search(text)
        if found is None:
            found = _ALL.search(text := text + source.read())
    return None if found is None else tuple(_QUOTED.findall(found[1]))


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
    """One service package's names, each bound from its module on first use (the package's `__getattr__`)."""

    def __init__(self, module: ModuleType, sources: dict[str, str], submodules: frozenset[str]) -> None:
        self.module, self.sources, self.submodules = module, sources, submodules

    def attribute(self, name: str) -> Any:
        package = self.module.__name__
        if name in self.sources:
            source = self.sources[name]
            loaded = importlib.import_module(f"{package}.{source}")
            # Importing it bound its own name (`get_project`) on the package; its exports come after, as
            # `from .get_project import *` does, and the function of that name wins.
            for each, where in self.sources.items():
                if where == source:
                    setattr(self.module, each, getattr(loaded, each))
            return getattr(self.module, name)
        if name in self.submodules:
            return importlib.import_module(f"{package}.{name}")  # binds itself on the package
        raise AttributeError(f"module {package!r} has no attribute {name!r}")


class _Loader(importlib.abc.Loader):
    """The package's own loader, but for a generated service package: its names bound as they are used."""

    def __init__(self, eager: importlib.abc.Loader) -> None:
        self.eager = eager

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.eager.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        origin = Path(module.__file__ or "")
        star: list[str] = []
        plain: list[str] = []
        above = ""
        for line in origin.read_text(encoding="utf-8").splitlines():
            match = _LINE.fullmatch(line)
            if match is None:  # another shape (a package's `config`): imported as Python imports it
                self.eager.exec_module(module)
                return
            above = match[1] or above
            star += [match[2]] if match[2] else []
            plain += [match[3]] if match[3] else []
        found = sources(origin.parent, star) if star and above else None
        if found is None:
            self.eager.exec_module(module)
            return
        # What the generated __init__.py binds beside its star imports.
        module._builtins = builtins  # type: ignore[attr-defined]
        module.typing = typing  # type: ignore[attr-defined]
        module._utilities = importlib.import_module(  # type: ignore[attr-defined]
            importlib.util.resolve_name(above, module.__name__) + "._utilities")
        module.__getattr__ = _Package(module, found, frozenset(star + plain)).attribute  # type: ignore[method-assign]


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
    """While inside, an SDK's service package first imported binds its names as they are used (and
    stays so after). One imported before is as it was."""
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
