"""The `pulumi config set [--secret] KEY VALUE` lines a stack file's header lists: what its owner runs once
(secrets, an account's own certificate), which the checks apply as a first deploy would and the plan
stands in for. Apart from the checks (stack.py), which a config check's placeholders never need.
"""

from __future__ import annotations

import re

from stacks.tools.paths import stack_file

DOCUMENTED_SET = re.compile(r"^#\s+pulumi config set (--secret )?(\w+) (\S+)", re.MULTILINE)


def documented_commands(stack: str) -> list[tuple[bool, str, str]]:
    """(secret?, key, value) of each `pulumi config set` line in the stack file's header."""
    return [(bool(secret), key, value) for secret, key, value in DOCUMENTED_SET.findall(stack_file(stack).read_text())]
