"""A warning for the operator: a store password rotation left half done.

`storePreviousPassword` keeps the replaced password valid on the store's user through the deploy
that rolls the tasks over (docs/pulumi.md, rotating the store's password). Left set afterwards,
the old password stays valid for good: whoever learned it can still sign in. The plan prints this
as a note, not a violation, because during the rotation it is exactly right.
"""

from __future__ import annotations

from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap

USER = "aws:elasticache/user:User"


def notes(registrations: Iterable[Registration], stack: str) -> list[str]:
    found = []
    for reg in registrations:
        if reg.type != USER:
            continue
        passwords = (unwrap(reg.inputs).get("authenticationMode") or {}).get("passwords") or []
        if len(passwords) > 1:
            found.append(f"{reg.type} {reg.name}: storePreviousPassword is set, so the replaced store password still "
                         "signs in. Once no task of the earlier deploy runs, finish the rotation: "
                         f"`pulumi config rm storePreviousPassword -s {stack}` and `pulumi up -s {stack}`")
    return found
