"""The Pulumi CLI the program needs: Pulumi.yaml's `requiredPulumiVersion` must keep out every CLI
older than the one whose uv toolchain roots at the program folder.

Before pulumi/pulumi 646a020a63 (#22072, first tagged v3.226.0) the uv toolchain ran
`uv sync --inexact` in the project's root folder (`newUv(options.Root, …)`), which installs the
repository's own project and its default groups, not infra/'s: the program then fails at
`import pulumi` (stacks/tools/preflight/toolchain.py models the current CLI). A CLI that knows
`requiredPulumiVersion` (pulumi/pulumi#21627, early 2026) stops at once when it is outside the
range; older ones ignore the key (the project schema allows other top-level keys), which is why
docs/pulumi.md also says which CLI to install. The range syntax is blang/semver's ParseRange:
comparisons `>=`, `>`, `<=`, `<`, `=`, `!` (or none, meaning `=`), AND-ed by spaces, OR-ed by `||`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEY = "requiredPulumiVersion"
UV_PROGRAM_FOLDER_SINCE = (3, 226, 0)
# CLIs the range must refuse (older than the fix); it must admit the CLI of infra/'s pinned SDK.
TOO_OLD = ((3, 0, 0), (3, 218, 0), (3, 225, 0), (3, 225, 99))
_COMPARISON = re.compile(r"^(>=|<=|>|<|=|!)?v?(\d+)\.(\d+)\.(\d+)$")

Version = tuple[int, int, int]


class RangeError(ValueError):
    """Not a range blang/semver would parse."""


def _satisfies(term: str, version: Version) -> bool:
    match = _COMPARISON.match(term)
    if match is None:
        raise RangeError(term)
    op, wanted = match[1] or "=", (int(match[2]), int(match[3]), int(match[4]))
    return {">=": version >= wanted, ">": version > wanted, "<=": version <= wanted, "<": version < wanted,
            "=": version == wanted, "!": version != wanted}[op]


def admits(text: str, version: Version) -> bool:
    """Whether `version` is in the range `text` (blang/semver ParseRange's grammar, without wildcards)."""
    alternatives = [part.split() for part in text.split("||")]
    if not text.strip() or any(not terms for terms in alternatives):
        raise RangeError(text)
    return any(all(_satisfies(term, version) for term in terms) for terms in alternatives)


def pinned_sdk(repository: Path) -> Version | None:
    """The pulumi SDK the program's own project pins (infra/pyproject.toml `pulumi==X.Y.Z`)."""
    pyproject = tomllib.loads((repository / "infra" / "pyproject.toml").read_text())
    for requirement in pyproject.get("project", {}).get("dependencies", []):
        match = re.fullmatch(r"pulumi==(\d+)\.(\d+)\.(\d+)", requirement.replace(" ", ""))
        if match:
            return int(match[1]), int(match[2]), int(match[3])
    return None


def violations(project: Mapping[str, Any], repository: Path) -> list[str]:
    floor = ".".join(map(str, UV_PROGRAM_FOLDER_SINCE))
    text = project.get(KEY)
    if not isinstance(text, str):
        return [f"Pulumi.yaml: no {KEY}: a CLI older than {floor} syncs the repository's own project instead of "
                f"infra/ and the program fails at `import pulumi`; set {KEY}: \">={floor}\""]
    try:
        admitted = [v for v in TOO_OLD if admits(text, v)]
        sdk = pinned_sdk(repository)
        refuses_sdk = sdk is not None and not admits(text, sdk)
    except RangeError as exc:
        return [f"Pulumi.yaml: {KEY} {text!r}: {exc!s} is not a semver range (e.g. \">={floor}\")"]
    found = []
    if admitted:
        found.append(f"Pulumi.yaml: {KEY} {text!r} admits CLI {'.'.join(map(str, admitted[-1]))}, older than "
                     f"{floor}, whose uv toolchain syncs the repository's own project instead of infra/")
    if refuses_sdk:
        found.append(f"Pulumi.yaml: {KEY} {text!r} refuses the CLI that matches infra/'s pulumi SDK")
    return found
