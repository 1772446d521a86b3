"""Every environment variable the code reads, found in its syntax tree (not by running it, so a
branch no test takes is still seen).

A read is a string constant (or a module-level constant naming one) that reaches an environment:
`env.get("X")`, `env["X"]`, `"X" in env`, `os.environ.get("X")`, or any call that is handed both an
environment and the name, such as `int_setting(env, "PORT", 8080)`. A helper that builds names
from a prefix (`f"{prefix}_RATE"`) is followed: a call handing it `"FLY_CREATE"` reads
`FLY_CREATE_RATE` and its siblings. An environment is a name `env` or `environ`, or `os.environ`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")
ENVIRONMENTS = {"env", "environ"}
WRITES = {"setdefault", "pop", "update", "__setitem__"}  # setting a default for a library is no setting


def python_files(roots: Iterable[Path]) -> Iterator[Path]:
    """The project's own sources: not bytecode caches, nor a virtualenv inside a root (the Pulumi
    program's infra/.venv, which Pulumi's uv toolchain creates there)."""
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py")
                          if "__pycache__" not in p.parts
                          and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _is_environment(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ENVIRONMENTS
    if isinstance(node, ast.Dict):  # `{**env, "AWS_REGION": region}`
        return any(key is None and _is_environment(value) for key, value in zip(node.keys, node.values, strict=True))
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _strings(node: ast.AST | None) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for element in node.elts for s in _strings(element)]
    return []


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


class _Module:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.nodes = list(ast.walk(tree))  # walked once: the scan reads them four times
        # Constants naming variables, at any level: `ENV_BODY = "VOICEFLEET_BODY"`, `names = ("A", "B")`
        self.constants: dict[str, list[str]] = {}
        self.exported: dict[str, list[str]] = {}  # module-level ones, which other modules import
        for node in self.nodes:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    values = _strings(node.value)
                    if isinstance(target, ast.Name) and values and all(VARIABLE.match(v) for v in values):
                        self.constants.setdefault(target.id, []).extend(values)
                        if node in tree.body:
                            self.exported[target.id] = values
        # Loop variables over constants: `for name in SERVICE_KEY_VARIABLES` (statements and comprehensions)
        self.loops: dict[str, ast.AST] = {}
        for node in self.nodes:
            if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name):
                self.loops[node.target.id] = node.iter


def _prefix_helpers(modules: list[_Module]) -> dict[str, list[str]]:
    """Functions that read `f"{param}_SUFFIX"` from an environment: name → suffixes."""
    helpers: dict[str, list[str]] = {}
    for module in modules:
        for function in module.nodes:
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if not any(a.arg in ENVIRONMENTS for a in function.args.args):
                continue  # no environment handed in: none of its f-strings is read from one
            suffixes = []
            for node in ast.walk(function):
                if isinstance(node, ast.JoinedStr) and len(node.values) == 2:
                    head, tail = node.values
                    if isinstance(head, ast.FormattedValue) and isinstance(tail, ast.Constant):
                        if isinstance(tail.value, str) and VARIABLE.match(tail.value.lstrip("_")):
                            suffixes.append(tail.value)
            if suffixes:
                helpers[function.name] = suffixes
    return helpers


def environment_reads(roots: Iterable[Path]) -> dict[str, set[str]]:
    """Variable → the files (relative to the roots' parent) that read it."""
    roots = list(roots)
    files = list(python_files(roots))
    modules = [_Module(ast.parse(path.read_text(), str(path))) for path in files]
    shared: dict[str, list[str]] = {}
    for module in modules:
        shared.update(module.exported)
    helpers = _prefix_helpers(modules)
    found: dict[str, set[str]] = {}

    for path, module in zip(files, modules, strict=True):
        where = str(path.relative_to(roots[0].parent))

        def names(node: ast.AST, module: _Module = module) -> list[str]:
            if isinstance(node, ast.Name):
                if node.id in module.constants:
                    return module.constants[node.id]
                if node.id in module.loops:
                    return names(module.loops[node.id])
                return shared.get(node.id, [])
            return _strings(node)

        for node in module.nodes:
            read: list[str] = []
            if isinstance(node, ast.Call):
                callee = _callee(node)
                if isinstance(node.func, ast.Attribute) and _is_environment(node.func.value):
                    if callee not in WRITES and node.args:
                        read = names(node.args[0])
                elif any(_is_environment(a) for a in node.args):
                    given = [n for a in node.args if not _is_environment(a) for n in names(a)]
                    if callee in helpers:
                        read = [p + suffix for p in given for suffix in helpers[callee]]
                    else:
                        read = given
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environment(node.value):
                read = names(node.slice)
            elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In) for op in node.ops):
                if any(_is_environment(c) for c in node.comparators):
                    read = names(node.left)
            for name in read:
                if VARIABLE.match(name):
                    found.setdefault(name, set()).add(where)
    return found


if __name__ == "__main__":
    import sys

    root = Path(__file__).resolve().parents[2]
    for variable, where in sorted(environment_reads(root / arg for arg in sys.argv[1:]).items()):
        print(f"{variable:40} {', '.join(sorted(where))}")
