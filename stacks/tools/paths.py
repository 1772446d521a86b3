"""Where the tools find the repository's parts: one copy of each path, whatever folder runs them."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]  # the folder of Pulumi.yaml
PROJECT_FILE = REPOSITORY / "Pulumi.yaml"
STACK_FILES = REPOSITORY / "stacks"  # Pulumi.yaml `stackConfigDir`: Pulumi.<stack>.yaml
PROGRAM = REPOSITORY / "infra" / "__main__.py"  # Pulumi.yaml `main: infra/`
SNAPSHOTS = REPOSITORY / "tests" / "infra" / "snapshots"  # the committed offline plans


def stack_file(stack: str) -> Path:
    return STACK_FILES / f"Pulumi.{stack}.yaml"


def stack_names() -> list[str]:
    """The example stacks: every Pulumi.<stack>.yaml in the stack config folder."""
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACK_FILES.glob("Pulumi.*.yaml"))
