"""Warnings for the operator: a store secret rotation left half done.

`storePreviousPassword` keeps the replaced password valid on the store's user through the deploy
that rolls the tasks over (docs/pulumi.md, rotating the store's password). Left set afterwards,
the old password stays valid for good: whoever learned it can still sign in.

`storeAcceptedMessageSecret` (REDIS_ACCEPTED_MESSAGE_SECRET) has the replicas open what was sealed
with a second secret while the message secret changes (docs/pulumi.md, changing the replicas'
message secret). Left set afterwards, whoever learned the old secret can still speak for a replica.

The plan prints these as notes, not violations, because during a rotation they are exactly right.
A roll of the secrets the stack makes (`secretsRoll`) gives the same two, but neither key is set: the
program's own warning names that roll's next step (stacks/config/made_secrets.py), so these stay silent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from stacks.config import made_secrets
from stacks.config.store import ACCEPTED_MESSAGE_SECRET_KEY, ACCEPTED_MESSAGE_SECRET_VARIABLE
from stacks.tools.mocks import Registration, unwrap

USER = "aws:elasticache/user:User"
DISPATCHERS = ("aws:ecs/taskDefinition:TaskDefinition", "gcp:cloudrunv2/service:Service")
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a resource type


def made_roll(registrations: Iterable[Registration]) -> bool:
    """Two generations of a made store secret at once: the stack's own roll is under way."""
    made = [reg.name for reg in registrations if reg.type == RANDOM_PASSWORD]
    return any(sum(name.startswith(f"{kind}-") for name in made) > 1
               for kind in (made_secrets.MESSAGE_SECRET, made_secrets.STORE_PASSWORD))


def notes(registrations: Iterable[Registration], stack: str) -> list[str]:
    registrations = list(registrations)
    if made_roll(registrations):
        return []
    found = []
    for reg in registrations:
        if reg.type == USER:
            passwords = (unwrap(reg.inputs).get("authenticationMode") or {}).get("passwords") or []
            if len(passwords) > 1:
                found.append(f"{reg.type} {reg.name}: storePreviousPassword is set, so the replaced store password "
                             "still signs in. Once no task of the earlier deploy runs, finish the rotation: "
                             f"`pulumi config rm storePreviousPassword -s {stack}` and `pulumi up -s {stack}`")
        elif reg.type in DISPATCHERS and ACCEPTED_MESSAGE_SECRET_VARIABLE in json.dumps(unwrap(reg.inputs),
                                                                                        default=str):
            found.append(f"{reg.type} {reg.name}: {ACCEPTED_MESSAGE_SECRET_KEY} is set, so the replicas also open "
                         "what was sealed with a second message secret. Once the change's last step has rolled "
                         f"out, finish it: `pulumi config rm {ACCEPTED_MESSAGE_SECRET_KEY} -s {stack}` and "
                         f"`pulumi up -s {stack}`")
    return found
