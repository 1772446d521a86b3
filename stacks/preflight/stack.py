"""Every preflight check for one example stack: the CLI's config checks, then names and sizes.

A stack file's header lists the `pulumi config set [--secret] KEY VALUE` lines its owner runs once
(secrets, an account's own certificate); the checks apply them, as a first deploy would.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stacks.mocks import Registration
from stacks.preflight import names, sizes, toolchain
from stacks.preflight.cli_config import StackValue, project_errors, stack_errors, stack_values

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_SET = re.compile(r"^#\s+pulumi config set (--secret )?(\w+) (\S+)", re.MULTILINE)


def stack_file(stack: str) -> Path:
    return ROOT / "stacks" / f"Pulumi.{stack}.yaml"


def documented_commands(stack: str) -> list[tuple[bool, str, str]]:
    """(secret?, key, value) of each `pulumi config set` line in the stack file's header."""
    return [(bool(secret), key, value) for secret, key, value in DOCUMENTED_SET.findall(stack_file(stack).read_text())]


def documented_values(stack: str) -> dict[str, StackValue]:
    """The stack's config after its documented `pulumi config set` lines (secrets stay ciphertext)."""
    values = stack_values(yaml.safe_load(stack_file(stack).read_text()) or {})
    for secret, key, value in documented_commands(stack):
        values[f"voicefleet:{key}"] = StackValue("<ciphertext>", secure=True) if secret else StackValue(value)
    return values


def violations(stack: str, registrations: list[Registration]) -> list[str]:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    found = project_errors(project) + stack_errors(project, stack, documented_values(stack))
    found += toolchain.violations(ROOT) + toolchain.build_context_violations(ROOT, registrations)
    return found + names.violations(registrations) + sizes.violations(registrations)
