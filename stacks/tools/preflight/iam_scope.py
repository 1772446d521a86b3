"""IAM conditions that scope a grant to this stack's bot VMs by name must not reach another stack's.

CEL `startsWith` is a plain prefix test: `…/instances/vf-gcp-prod-` also matches the VMs of a
stack named `gcp-prod-eu` in the same project and zone. The check builds the VM names another
valid stack would use (this stack's name extended with a dash and a word, which the stack-name
grammar allows) and requires that none of them matches the condition's prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap

_STARTS_WITH = re.compile(r'resource\.name\.startsWith\("([^"]*/instances/)([^"]*)"\)')


def violations(stack: str, registrations: Iterable[Registration]) -> list[str]:
    from stacks.config.settings import valid_stack_name
    from stacks.gcp.naming import instance_prefix  # the names the dispatcher gives bot VMs

    others = [name for name in (f"{stack}-eu", f"{stack}-2") if valid_stack_name(name)]
    found = []
    for reg in registrations:
        condition = (unwrap(reg.inputs).get("condition") or {}).get("expression", "")
        for _, prefix in _STARTS_WITH.findall(condition):
            reached = [other for other in others if f"{instance_prefix(other)}-session".startswith(prefix)]
            if reached:
                found.append(f"{reg.type} {reg.name}: its condition startsWith({prefix!r}) also matches the bot VMs "
                             f"of stack {reached[0]!r} in the same project and zone")
    return found
