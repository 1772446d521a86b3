"""`python -m stacks.tools.stack_images STACK`: what images/ci/build.sh needs to build a stack's bot images
as `pulumi up` would, read from its stack file as the plan reads it: the bot project, the budget and
whether it has a TURN relay (so a SmallWebRTC image), one `name=value` line each for the shell.

Read from the files, not the program: the build runs without Pulumi's packages (Pulumi.yaml's
defaults stand for a key the stack file leaves out, as the CLI merges them), after what the stack's
cloud, size and profile derive (stacks/config/derived.py), as the program's reader takes them.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES, derived
from stacks.config.project_file import project_document
from stacks.tools.paths import PROJECT_FILE, stack_document, stack_names

KEYS = {"botProject": "bot_project", "botImageBudgetMb": "budget", "turn": "turn"}


def stack_values(stack: str) -> dict[str, str]:
    """botProject, botImageBudgetMb and turn of the stack: its file's, else Pulumi.yaml's default."""
    project: dict[str, Any] = project_document(PROJECT_FILE)
    name = str(project["name"])
    config: dict[str, Any] = stack_document(stack).get("config") or {}
    size, profile = config.get(f"{name}:size"), config.get(f"{name}:profile")
    by_stack = derived(size if size in SIZE_NAMES else None, profile if profile in PROFILE_NAMES else None,
                       cloud=str(config.get(f"{name}:cloud", "")))
    found: dict[str, str] = {}
    for key, variable in KEYS.items():
        spec = project["config"][key]
        default = by_stack[key][0] if key in by_stack else spec["default"] if isinstance(spec, dict) else spec
        found[variable] = str(config.get(f"{name}:{key}", default))
    budget = found["budget"]
    return {"bot_project": found["bot_project"], "budget": "" if budget in ("", "0") else budget,
            "webrtc": "no" if found["turn"] == "none" else "yes"}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in stack_names():
        print(f"usage: python -m stacks.tools.stack_images STACK ({', '.join(stack_names())})", file=sys.stderr)
        return 2
    for variable, value in stack_values(argv[0]).items():
        print(f"{variable}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
