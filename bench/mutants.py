"""Small, bug-like changes to a Python module, one at a time (the operators of bench/mutation.py).

Each `Mutant` is one change at one place: a comparison or boolean operator flipped, a condition's
`not` dropped, a number off by one, True/False swapped, a call statement deleted (`await
rooms.delete(...)` → nothing), a value returned as None, `+`/`-` swapped, and for IAM the
security-relevant ones: an Allow made Deny, a resource or action widened to `*`, a trusted service
replaced by any AWS account. Docstrings, annotations, log calls and message strings are left alone:
changing them is not a bug a behaviour test should catch.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass

COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


@dataclass(frozen=True)
class Mutant:
    path: str
    line: int
    description: str
    source: str  # the whole mutated module

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.description}"


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, log calls and their arguments."""
    skipped: set[int] = set()

    def skip(node: ast.AST | None) -> None:
        if node is not None:
            skipped.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                skip(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            skip(node.annotation)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS:
            skip(node)
        if isinstance(node, ast.JoinedStr):
            skip(node)
    for node in ast.walk(tree):  # deleting a log line is no bug a behaviour test should catch
        if isinstance(node, ast.Expr) and id(node.value) in skipped:
            skip(node)
    return skipped


def _string_mutation(value: str, parent_key: str | None) -> tuple[str, str] | None:
    """Only strings whose change widens a permission; other strings are messages or names."""
    if value == "*":
        return None
    if value == "Allow":
        return "Deny", "Allow -> Deny"
    if parent_key in ("Resource", "Action") or value.startswith(
            ("arn:", "ecs:", "ecr:", "logs:", "iam:", "secretsmanager:", "sts:", "compute.", "ssm:")):
        return "*", f"{value!r} -> '*'"
    return None


def _candidates(tree: ast.AST) -> Iterator[tuple[ast.AST, str, object]]:
    """(node, description, change) for every place a mutation applies, in source order."""
    skipped = _skipped_nodes(tree)
    dict_keys: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and value is not None:
                    dict_keys[id(value)] = key.value
                    for inner in ast.walk(value):
                        dict_keys.setdefault(id(inner), key.value)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in COMPARE_SWAPS:
                    yield node, f"{type(op).__name__} -> {COMPARE_SWAPS[type(op)].__name__}", ("cmp", i)
        elif isinstance(node, ast.BoolOp):
            yield node, f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}", "boolop"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "drop `not`", "not"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            if not (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
                yield node, "+ <-> -", "binop"
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                yield node, f"{node.value} -> {not node.value}", "bool"
            elif isinstance(node.value, int) and not isinstance(node.value, bool):
                yield node, f"{node.value} -> {node.value + 1}", "int"
            elif isinstance(node.value, str) and (change := _string_mutation(node.value, dict_keys.get(id(node)))):
                yield node, change[1], ("str", change[0])
        elif isinstance(node, ast.Dict):
            for i, key in enumerate(node.keys):
                if isinstance(key, ast.Constant) and key.value == "Service":
                    yield node, "trust {'Service': …} -> {'AWS': '*'}", ("principal", i)
        elif isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)):
            yield node, "delete the call statement", "delete"
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                yield node, "return None", "return"


def _apply(node: ast.AST, change: object) -> None:
    if isinstance(change, tuple) and change[0] == "cmp":
        assert isinstance(node, ast.Compare)
        node.ops[change[1]] = COMPARE_SWAPS[type(node.ops[change[1]])]()
    elif change == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif change == "binop":
        assert isinstance(node, ast.BinOp)
        node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
    elif change == "bool":
        assert isinstance(node, ast.Constant)
        node.value = not node.value
    elif change == "int":
        assert isinstance(node, ast.Constant) and isinstance(node.value, int)
        node.value = node.value + 1
    elif isinstance(change, tuple) and change[0] == "str":
        assert isinstance(node, ast.Constant)
        node.value = change[1]
    elif isinstance(change, tuple) and change[0] == "principal":
        assert isinstance(node, ast.Dict)
        node.keys[change[1]] = ast.Constant("AWS")
        node.values[change[1]] = ast.Constant("*")
    elif change == "return":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(None)


def mutants(path: str, source: str) -> Iterator[Mutant]:
    tree = ast.parse(source)
    count = sum(1 for _ in _candidates(tree))
    for index in range(count):
        mutated = copy.deepcopy(tree)
        node, description, change = list(_candidates(mutated))[index]
        line = getattr(node, "lineno", 0)
        if change == "delete":
            parent = _parent_body(mutated, node)
            parent[parent.index(node)] = ast.Pass()  # type: ignore[arg-type]
        elif change == "not":
            _replace(mutated, node, node.operand)  # type: ignore[attr-defined]
        else:
            _apply(node, change)
        yield Mutant(path, line, description, ast.unparse(ast.fix_missing_locations(mutated)))


def _parent_body(tree: ast.AST, target: ast.AST) -> list[ast.stmt]:
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody", "handlers"):
            body = getattr(node, field, None)
            if isinstance(body, list) and any(item is target for item in body):
                return body
    raise LookupError("statement not found")


def _replace(tree: ast.AST, target: ast.AST, replacement: ast.AST) -> None:
    for node in ast.walk(tree):
        for field, value in ast.iter_fields(node):
            if value is target:
                setattr(node, field, replacement)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is target:
                        value[i] = replacement
                        return
    raise LookupError("node not found")
