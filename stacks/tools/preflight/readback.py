"""A second `preview` after an `up` shows no change: inputs a service returns rewritten.

A provider that stores what the service returns, with no diff suppression, compares the next
`preview`'s input with that: a value the service rewrites is a change on every preview (and an
update on every `up`). The mocks return each such value the way the service does
(stacks/tools/mocks.py); this rule compares it with what the program sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap

# Resource type -> the inputs whose read-back the mocks model. ElastiCache's DescribeUsers returns
# the access string as its engine renders it, and terraform-provider-aws `user.go` keeps that.
READ_BACK = {"aws:elasticache/user:User": ("accessString",)}


def violations(registrations: Iterable[Registration]) -> list[str]:
    found = []
    for reg in registrations:
        for key in READ_BACK.get(reg.type, ()):
            sent, returned = unwrap(reg.inputs).get(key), unwrap(reg.outputs).get(key)
            if returned is not None and sent != returned:
                found.append(f"{reg.type} {reg.name}: {key} comes back as {returned!r}, not as sent ({sent!r}): "
                             "every preview would show it changing; write it in the returned form")
    return found
