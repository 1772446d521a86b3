"""A stack key set as an environment variable (`maxConcurrentSessions=3 voicefleet config check --stack
aws-prod`): neither `pulumi up` nor the offline tools read a stack key from the environment, so the value
would be lost in silence. Each such variable gets a line naming the command that sets the key."""

from __future__ import annotations

from collections.abc import Mapping

from stacks.config.key_table import SECRET_KEYS
from stacks.config.stack_keys import known


def hints(environ: Mapping[str, str], stack: str) -> list[str]:
    """One line per environment variable named as a stack key (its value never shown)."""
    lines = []
    for name in sorted(set(environ) & known()):
        way = (f"`pulumi config set --secret {name} -s {stack}` (it prompts for the value)" if name in SECRET_KEYS
               else f"`pulumi config set {name} <value> -s {stack}` (or try it first: `--config {name}=<value>`)")
        lines.append(f"{name} is set in the environment, where no stack tool reads a stack key: {way}")
    return lines
