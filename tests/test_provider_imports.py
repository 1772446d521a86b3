"""Code mypy checks imports the cloud providers' service modules it uses, never the provider package
itself. Each provider's `__init__.py` imports its every service module for type checkers, so mypy skips
the four packages (pyproject.toml, `follow_imports = "skip"`) and a cold run reads thousands of modules
fewer; but a name reached through a skipped package (`aws.ecs.Cluster` after `import pulumi_aws as aws`,
`aws.Provider`) is `Any` to mypy, unchecked, and nothing says so. Hence: every import of a provider names
its submodule (`import pulumi_aws.ecs as aws_ecs`, `from pulumi_aws import ecs`) or the module that
defines a top-level name (`from pulumi_aws.provider import Provider`). docs/testing.md has the figures."""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from functools import cache
from pathlib import Path

from stacks.tools.lazy_sdk import exported

ROOT = Path(__file__).resolve().parents[1]
# Each skipped provider, and the prefix its service modules are bound under (`aws_ecs`, `k8s_core`).
PROVIDERS = {"pulumi_aws": "aws", "pulumi_gcp": "gcp", "pulumi_azure_native": "azure", "pulumi_kubernetes": "k8s"}


@cache
def _folder(package: str) -> Path:
    """The package's folder, found without importing it (importing pulumi_azure_native takes seconds)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _bound_over_submodules(package: str) -> frozenset[str]:
    """Submodules the package's own `from .name import *` binds a name over (`pulumi_aws.get_region` is the
    function at run time, the module to mypy once the package is skipped): never imported as modules."""
    folder = _folder(package)
    star = re.findall(r"^from \.(\w+) import \*$", (folder / "__init__.py").read_text(encoding="utf-8"), re.MULTILINE)
    return frozenset(name for name in star if name in (exported(folder / f"{name}.py") or ()))


def _is_submodule(package: str, name: str) -> bool:
    folder = _folder(package)
    module = (folder / name / "__init__.py").is_file() or (folder / f"{name}.py").is_file()
    return module and name not in _bound_over_submodules(package)


def _defining_module(package: str, name: str) -> str:
    """The module of the package's top level that defines `name`, for the message."""
    pattern = re.compile(rf"^(?:def|class) {re.escape(name)}\b|^{re.escape(name)}\s*[:=]", re.MULTILINE)
    for module in sorted(_folder(package).glob("*.py")):
        if pattern.search(module.read_text(encoding="utf-8")):
            return f"{package}.{module.stem}"
    return f"{package}.<the module its __init__.py takes {name} from>"


def _instead(tree: ast.AST, package: str, bound: str) -> str:
    """The imports replacing `import package as bound`: one per name the file reaches through `bound.`."""
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Name) and node.value.id == bound})
    short = PROVIDERS[package]
    lines = [f"import {package}.{name} as {short}_{name}" if _is_submodule(package, name)
             else f"from {_defining_module(package, name)} import {name}" for name in used]
    return "`, `".join(lines) or f"import {package}.<service> as {short}_<service>"


def _wrong_imports(tree: ast.AST) -> list[str]:
    """Each import binding a provider package (or a name reached through it), with the import to use."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, _, sub = alias.name.partition(".")
                if top in PROVIDERS and sub and alias.asname is not None and not _is_submodule(top, sub.split(".")[0]):
                    name = sub.split(".")[0]
                    found.append(f"line {node.lineno}: `import {alias.name}`: use "
                                 f"`from {_defining_module(top, name)} import {name}`")
                elif top in PROVIDERS and (not sub or alias.asname is None):
                    instead = (f"import {alias.name} as {PROVIDERS[top]}_{sub.split('.')[-1]}" if sub
                               else _instead(tree, top, alias.asname or top))
                    found.append(f"line {node.lineno}: `import {alias.name}`: use `{instead}`")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in PROVIDERS:
            for alias in node.names:
                if alias.name == "*" or not _is_submodule(node.module, alias.name):
                    source = "<each submodule>" if alias.name == "*" else _defining_module(node.module, alias.name)
                    found.append(f"line {node.lineno}: `from {node.module} import {alias.name}`: use "
                                 f"`from {source} import {alias.name}`")
    return found


def _local_package(name: str) -> Path | None:
    for folder in (ROOT / name, ROOT / "src" / name):
        if (folder / "__init__.py").is_file():
            return folder
    return None


@cache
def _checked_files() -> tuple[Path, ...]:
    """The files CI's `mypy` checks: the paths on its command line in .ci/run, and the local packages their
    imports reach (mypy follows those and checks them too, botchannel/ among them)."""
    command = re.search(r"^uv run mypy (.+)$", (ROOT / ".ci/run").read_text(encoding="utf-8"), re.MULTILINE)
    assert command, ".ci/run no longer runs `uv run mypy <paths>`: name the checked paths here"
    paths = [ROOT / name for name in command[1].split()]
    files = {file for path in paths for file in ([path] if path.is_file() else path.rglob("*.py"))}
    unread = list(files)
    while unread:
        tree = ast.parse(unread.pop().read_text(encoding="utf-8"))
        tops = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
        tops |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
        for folder in filter(None, map(_local_package, tops - {"tests"})):
            new = set(folder.rglob("*.py")) - files
            files |= new
            unread.extend(new)
    return tuple(sorted(files))


def test_mypy_skips_exactly_the_provider_packages() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    skipped = [module for override in config.get("overrides", []) if override.get("follow_imports") == "skip"
               for module in override["module"]]
    assert sorted(skipped) == sorted(PROVIDERS), "mypy's follow_imports = \"skip\" must name the four providers"


def test_checked_code_imports_provider_submodules_only() -> None:
    wrong = [f"{file.relative_to(ROOT)} {found}" for file in _checked_files()
             for found in _wrong_imports(ast.parse(file.read_text(encoding="utf-8")))]
    assert not wrong, ("mypy skips these provider packages, so names reached through them are unchecked `Any`; "
                       "import the submodule instead:\n" + "\n".join(wrong))


def test_the_check_names_each_wrong_import_and_its_replacement() -> None:
    source = ("import pulumi_aws as aws\naws.ecs.Cluster(aws.Provider('p'))\nimport pulumi_gcp.compute\n"
              "from pulumi_azure_native import Provider\nfrom pulumi_kubernetes import core\n"
              "import pulumi_aws.ecs as aws_ecs\n")
    assert _wrong_imports(ast.parse(source)) == [
        "line 1: `import pulumi_aws`: use `from pulumi_aws.provider import Provider`, "
        "`import pulumi_aws.ecs as aws_ecs`",
        "line 3: `import pulumi_gcp.compute`: use `import pulumi_gcp.compute as gcp_compute`",
        "line 4: `from pulumi_azure_native import Provider`: use `from pulumi_azure_native.provider import Provider`",
    ]
