"""Review of the provider-import check (tests/test_provider_imports.py) and mypy's skipping of the four
provider packages: imports the check lets through that mypy now types otherwise than Python runs them, or
not at all. Each finding was a strict xfail; the check and mypy's config are fixed, and each test holds
them to it."""

from __future__ import annotations

import ast
import re
import tomllib

import pytest

from stacks.tools.lazy_sdk import exported
from tests.test_provider_imports import PROVIDERS, ROOT, _checked_files, _folder, _instead, _wrong_imports


def _bound_over_submodule(package: str) -> list[str]:
    """The package's submodules whose name its own star imports bind to something else: `pulumi_aws/__init__.py`
    runs `from .get_region import *` after Python set the submodule, so `pulumi_aws.get_region` is the
    function, and `from pulumi_aws import get_region` (or `import pulumi_aws.get_region as x`: IMPORT_FROM
    reads the attribute first) binds the function at run time."""
    folder = _folder(package)
    star = re.findall(r"^from \.(\w+) import \*$", (folder / "__init__.py").read_text(encoding="utf-8"), re.MULTILINE)
    return sorted(name for module in star for name in exported(folder / f"{module}.py") or () if name in star)


@pytest.mark.parametrize("package", ["pulumi_aws", "pulumi_gcp"])
def test_a_name_the_package_binds_over_its_submodule_is_refused(package: str) -> None:
    shadowed = _bound_over_submodule(package)
    assert shadowed, f"{package} no longer binds a function over a submodule: drop this case"
    let_through = [name for name in shadowed
                   if not _wrong_imports(ast.parse(f"from {package} import {name}\n"))
                   or not _wrong_imports(ast.parse(f"import {package}.{name} as {PROVIDERS[package]}_{name}\n"))]
    assert not let_through, f"the check accepts imports of {package}'s functions as submodules: {let_through}"


def test_the_replacement_for_a_function_named_as_its_module_imports_the_function() -> None:
    tree = ast.parse("import pulumi_aws as aws\naws.get_region()\n")
    assert _instead(tree, "pulumi_aws", "aws") == "from pulumi_aws.get_region import get_region"


def test_a_provider_module_that_does_not_exist_is_an_error() -> None:
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]["overrides"]
    strict = all(any(f"{package}.*" in override["module"] and override.get("ignore_missing_imports") is False
                     for override in overrides) for package in PROVIDERS)
    refused = bool(_wrong_imports(ast.parse("import pulumi_aws.ecss as aws_ecss\n"))
                   and _wrong_imports(ast.parse("from pulumi_aws.providr import Provider\n")))
    assert strict or refused


def test_the_check_covers_the_local_modules_mypy_follows() -> None:
    checked = {file.relative_to(ROOT).as_posix() for file in _checked_files()}
    assert "botchannel/contract.py" in checked
