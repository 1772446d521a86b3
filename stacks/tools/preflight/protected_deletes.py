"""Protected resources a planned config change would delete, which `pulumi up` refuses to do.

A protected stack (`protect`, `profile: prod`) protects what must not go by accident, such as the SIP
edge's public address that every trunk's origination URI names. A change that drops it (`sipEdge`'s
`enabled: false`) is then refused at that delete, after the updates ahead of it were made. The change
may be meant: the plan notes it, with the command that lifts the protection, rather than refusing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stacks.tools.mocks import Registration

ROOT = "pulumi:pulumi:Stack"


def engine_urn(reg: Registration, by_urn: Mapping[str, Registration]) -> str:
    """The URN the engine gives `reg`: its type qualified by every ancestor's but the stack's (the offline
    mocks qualify it by its parent's alone)."""
    types, parent = [reg.type], by_urn.get(reg.parent)
    while parent is not None and parent.type != ROOT:
        types.insert(0, parent.type)
        parent = by_urn.get(parent.parent)
    stack, project = reg.urn.split("::")[0].removeprefix("urn:pulumi:"), reg.urn.split("::")[1]
    return f"urn:pulumi:{stack}::{project}::{'$'.join(types)}::{reg.name}"


def notes(deployed: Iterable[Registration], planned: Iterable[Registration], stack: str) -> list[str]:
    """A note for each protected resource of `deployed` that `planned` no longer holds."""
    deployed = list(deployed)
    by_urn, kept = {reg.urn: reg for reg in deployed}, {reg.urn for reg in planned}
    return [f"{reg.type} {reg.name} is protected, and this change deletes it, which `pulumi up` refuses (it stops "
            f"there, after the updates ahead of it): if the change is meant, first `pulumi state unprotect -s {stack} "
            f"'{engine_urn(reg, by_urn)}'` (what it is goes with it: an address every trunk names is released), "
            "then `up`"
            for reg in deployed if reg.protect and reg.urn not in kept]
