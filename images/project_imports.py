"""The modules a bot project's own code imports, read from its source (never run) at plan time.

bot.py and, transitively, the project's own modules it imports (a sibling `video.py`, a package
folder beside it: what Python finds first on the path of the folder bot.py runs in) are parsed; every
other module they import, anywhere in a file (a function's import runs when the function does), is
what the bot needs from its lock. An import inside a `try` that handles ImportError (or
ModuleNotFoundError, Exception) is optional: the bot runs without it, so it needs nothing.

The plan reads it so that it never advises leaving out a package the bot imports, and refuses a
`[tool.voicefleet] exclude-packages` entry that would make the image fail `No module named …`.
Which modules a distribution provides comes from its installed metadata (RECORD) where one is
installed, in the project's own .venv or the plan's environment (uv.lock names no module), else
from its name.
"""

from __future__ import annotations

import ast
import importlib.metadata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from images.python_source import parse_file
from images.source_file import MAX_FILE_BYTES, SourceRefused

# Distributions whose import name is not their own name: the packages a project may think of
# leaving out (the plan's slimming names them), and the common ones besides.
IMPORT_NAMES: dict[str, tuple[str, ...]] = {
    "opencv-python": ("cv2",), "opencv-python-headless": ("cv2",), "opencv-contrib-python": ("cv2",),
    "opencv-contrib-python-headless": ("cv2",), "pillow": ("PIL",), "pyyaml": ("yaml",),
    "scikit-learn": ("sklearn",), "scikit-image": ("skimage",), "beautifulsoup4": ("bs4",),
    "python-dotenv": ("dotenv",), "daily-python": ("daily",),
}  # fmt: skip
# A bot's own modules are a few dozen: the walk stops well past that, so a vendored tree cannot stall the plan.
MAX_OWN_FILES = 2000
# And it parses this much of them at most (each file at most images/source_file.py's bound): a parse
# costs seconds and hundreds of MB a MB, so 2000 files of that bound would stall the plan for an hour.
MAX_OWN_BYTES = 20_000_000
OPTIONAL_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(frozen=True)
class ModuleImport:
    module: str  # the top-level name imported: `cv2` for `from cv2 import resize`
    file: str  # the project file that imports it, relative to the project
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def import_names(distribution: str, project: Path | None = None) -> tuple[str, ...]:
    """The modules a locked distribution provides, each a dotted name (`google.protobuf` for a package
    of a namespace): by its installed metadata when the project's .venv or the plan's environment holds
    it, else by IMPORT_NAMES or its own name."""
    installed = next((modules for found in _installed(distribution, project) if (modules := _provided(found))), ())
    name = canonicalize_name(distribution)
    return installed or IMPORT_NAMES.get(name, (name.replace("-", "_"),))


def importing(distribution: str, imports: Mapping[str, ModuleImport],
              project: Path | None = None) -> ModuleImport | None:
    """The project's import of a module `distribution` provides (or of one inside it), if any."""
    provided = import_names(distribution, project)
    return next((found for module, found in imports.items()
                 if any(module == own or module.startswith(f"{own}.") for own in provided)), None)


def _installed(distribution: str, project: Path | None) -> Iterator[importlib.metadata.Distribution]:
    if project is not None:
        for site_packages in sorted((project / ".venv" / "lib").glob("python3*/site-packages")):
            yield from importlib.metadata.Distribution.discover(name=distribution, path=[str(site_packages)])
    yield from importlib.metadata.Distribution.discover(name=distribution)


def _provided(distribution: importlib.metadata.Distribution) -> tuple[str, ...]:
    """The outermost importable modules in a distribution's RECORD: a package is named at its first
    folder with an __init__.py, so a namespace's portion is `google.protobuf`, not all of `google`."""
    files = {file.parts for file in distribution.files or () if file.parts and file.parts[0] != ".."}
    modules: set[str] = set()
    for parts in files:
        if not parts[-1].endswith((".py", ".so", ".pyd")) or any(part.endswith((".dist-info", ".data"))
                                                                  for part in parts):
            continue
        package = next((parts[:depth] for depth in range(1, len(parts)) if (*parts[:depth], "__init__.py") in files),
                       (*parts[:-1], parts[-1].split(".")[0]))
        if all(part.isidentifier() for part in package):  # not a vendored `<name>.libs/` folder
            modules.add(".".join(package))
    return tuple(sorted(module for module in modules
                        if not any(module.startswith(f"{other}.") for other in modules)))


def imported_modules(project: Path, entry: str = "bot.py") -> dict[str, ModuleImport]:
    """Module name (top-level, and dotted as imported) -> its first import, for every module that is
    not the project's own, imported by `entry` and the project's own modules it reaches. Files that
    cannot be parsed count nothing (the image build's `--check` reports them with Python's own message)."""
    found: dict[str, ModuleImport] = {}
    for path, tree in own_modules(project, entry):
        for dotted, line in _imports(tree, _package_of(project, path)):
            if _own_files(project, dotted) is None and not dotted.startswith("."):
                for module in (dotted.split(".")[0], dotted):
                    found.setdefault(module, ModuleImport(module, path.relative_to(project).as_posix(), line))
    return found


def own_modules(project: Path, entry: str = "bot.py", *, max_files: int = MAX_OWN_FILES,
                max_bytes: int = MAX_OWN_BYTES,
                skip: Callable[[Path], bool] = lambda path: False) -> Iterator[tuple[Path, ast.Module]]:
    """`entry` and the project's own modules it imports, transitively (`import x`, `from x import y`,
    `from . import y`, resolved against the project's folder), each parsed once, at most `max_files`
    of them and `max_bytes` in all. A file `skip` refuses, one past the bytes left, one Python cannot
    parse or images/source_file.py will not read is passed over, and what it imports unread."""
    pending, seen, left = [project / entry], set[Path](), max_bytes
    while pending and len(seen) < max_files:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.add(path)
        size = _size(path)
        if skip(path) or size > left:
            continue
        left -= size
        try:
            tree = parse_file(path, project)
        except SourceRefused:  # a link out of the project, too large: passed over unread, as a broken file is
            tree = None
        if tree is None:
            continue
        yield path, tree
        for dotted, _ in _imports(tree, _package_of(project, path)):
            pending += _own_files(project, dotted) or []


def _size(path: Path) -> int:
    """What reading `path` costs the budget: a file over images/source_file.py's bound is refused unread."""
    try:
        return min(path.stat().st_size, MAX_FILE_BYTES)
    except OSError:
        return 0  # gone or unreadable: its read fails, and the image build reports it


def _package_of(project: Path, path: Path) -> str:
    """The dotted package `path` is in, relative to the project's root ("" at the root)."""
    return ".".join(path.parent.relative_to(project).parts)


def _imports(tree: ast.Module, package: str) -> list[tuple[str, int]]:
    """(dotted module, line) of every import that is not optional; `from a import b` gives a.b and
    a (b may be a submodule). Relative imports are resolved against `package`."""
    found: list[tuple[str, int]] = []
    # A walk with a list of its own, not Python's stack: a hostile `x = ----…1` nests thousands deep,
    # past the interpreter's recursion limit.
    pending: list[tuple[ast.AST, bool]] = [(tree, False)]
    while pending:
        node, optional = pending.pop()
        if isinstance(node, ast.Try):
            guarded = optional or any(_catches_import_errors(handler) for handler in node.handlers)
            pending.extend(reversed([*((statement, guarded) for statement in node.body),
                                     *((other, optional) for other in [*node.handlers, *node.orelse,
                                                                       *node.finalbody])]))
            continue
        if not optional and isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif not optional and isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is not None:
                found.extend((f"{base}.{alias.name}" if base else alias.name, node.lineno) for alias in node.names
                             if alias.name != "*")
                if base:
                    found.append((base, node.lineno))
        elif not optional and isinstance(node, ast.Call) and (dynamic := _dynamic_import(node)) is not None:
            found.append((dynamic, node.lineno))
        pending.extend(reversed([(child, optional) for child in ast.iter_child_nodes(node)]))
    return found


def _dynamic_import(node: ast.Call) -> str | None:
    """The module of `importlib.import_module("name")` / `import_module("name")` / `__import__("name")`
    called with a literal absolute name; None for anything else (a computed name cannot be read)."""
    if not node.args:
        return None
    function = node.func
    name = (function.attr if isinstance(function, ast.Attribute)
            else function.id if isinstance(function, ast.Name) else "")
    module = node.args[0]
    if name not in ("import_module", "__import__") or not isinstance(module, ast.Constant):
        return None
    return module.value if isinstance(module.value, str) and module.value and not module.value.startswith(".") else None


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True  # a bare except
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(name, ast.Name) and name.id in OPTIONAL_ERRORS for name in names)


def _absolute(node: ast.ImportFrom, package: str) -> str | None:
    """The module an ImportFrom names, absolute; relative ones start at the importing file's package
    ("" for `from . import x` at the project's root). None when it climbs out of the project."""
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    if node.level - 1 > len(parts):
        return None
    base = parts[:len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _own_files(project: Path, dotted: str) -> list[Path] | None:
    """The project's files that importing `dotted` runs (each package's __init__.py on the way, and the
    module itself), or None when its top-level name is not the project's own module or package."""
    parts = [part for part in dotted.split(".") if part]
    if not parts:
        return []  # `from . import x` at the root: x itself comes as its own entry
    top = project / parts[0]
    if not (top.with_suffix(".py").is_file() or (top / "__init__.py").is_file()
            or (top.is_dir() and any(top.rglob("*.py")))):
        return None
    files: list[Path] = []
    for depth in range(1, len(parts) + 1):
        base = project.joinpath(*parts[:depth])
        files += [candidate for candidate in (base / "__init__.py", base.with_suffix(".py")) if candidate.is_file()]
    return files
