"""The modules a bot project's own code imports, read from its source (never run) at plan time.

bot.py and, transitively, the project's own modules it imports (a sibling `video.py`, a package
folder beside it: what Python finds first on the path of the folder bot.py runs in) are parsed; every
other module they import, anywhere in a file (a function's import runs when the function does), is
what the bot needs from its lock. An import inside a `try` that handles ImportError (or
ModuleNotFoundError, Exception) is optional: the bot runs without it, so it needs nothing.

The plan reads it so that it never advises leaving out a package the bot imports, and refuses a
`[tool.voicefleet] exclude-packages` entry that would make the image fail `No module named …`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

# Distributions whose import name is not their own name: the packages a project may think of
# leaving out (the plan's slimming names them), and the common ones besides.
IMPORT_NAMES: dict[str, tuple[str, ...]] = {
    "opencv-python": ("cv2",), "opencv-python-headless": ("cv2",), "opencv-contrib-python": ("cv2",),
    "opencv-contrib-python-headless": ("cv2",), "pillow": ("PIL",), "pyyaml": ("yaml",),
    "scikit-learn": ("sklearn",), "scikit-image": ("skimage",), "beautifulsoup4": ("bs4",),
    "python-dotenv": ("dotenv",), "daily-python": ("daily",),
}  # fmt: skip
OPTIONAL_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(frozen=True)
class ModuleImport:
    module: str  # the top-level name imported: `cv2` for `from cv2 import resize`
    file: str  # the project file that imports it, relative to the project
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def import_names(distribution: str) -> tuple[str, ...]:
    """The top-level modules a locked distribution provides (its own name, unless IMPORT_NAMES says)."""
    name = canonicalize_name(distribution)
    return IMPORT_NAMES.get(name, (name.replace("-", "_"),))


def imported_modules(project: Path, entry: str = "bot.py") -> dict[str, ModuleImport]:
    """Top-level module name -> its first import, for every module that is not the project's own,
    imported by `entry` and the project's own modules it reaches. Files that cannot be parsed count
    nothing (the image build's `--check` reports them with Python's own message)."""
    found: dict[str, ModuleImport] = {}
    pending, seen = [project / entry], set()
    while pending:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for dotted, line in _imports(tree, _package_of(project, path)):
            own = _own_files(project, dotted)
            if own is not None:
                pending += own
            elif not dotted.startswith(".") and dotted.split(".")[0] not in found:
                top = dotted.split(".")[0]
                found[top] = ModuleImport(top, path.relative_to(project).as_posix(), line)
    return found


def _package_of(project: Path, path: Path) -> str:
    """The dotted package `path` is in, relative to the project's root ("" at the root)."""
    return ".".join(path.parent.relative_to(project).parts)


def _imports(tree: ast.Module, package: str) -> list[tuple[str, int]]:
    """(dotted module, line) of every import that is not optional; `from a import b` gives a.b and
    a (b may be a submodule). Relative imports are resolved against `package`."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try):
            guarded = optional or any(_catches_import_errors(handler) for handler in node.handlers)
            for statement in node.body:
                visit(statement, guarded)
            for other in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(other, optional)
            return
        if not optional and isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif not optional and isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is not None:
                found.extend((f"{base}.{alias.name}" if base else alias.name, node.lineno) for alias in node.names
                             if alias.name != "*")
                if base:
                    found.append((base, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


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
            or (top.is_dir() and any(top.glob("*.py")))):
        return None
    files: list[Path] = []
    for depth in range(1, len(parts) + 1):
        base = project.joinpath(*parts[:depth])
        files += [candidate for candidate in (base / "__init__.py", base.with_suffix(".py")) if candidate.is_file()]
    return files
