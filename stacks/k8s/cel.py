"""CEL text the bots' admission policy is written in (stacks/k8s/admission.py): names quoted, users spelled.

Every value written into an expression is checked before (DNS labels, images by digest, a user name with
no quote or backslash: stacks/config/k8s.py); `quoted` refuses a quote or backslash all the same.
"""

from __future__ import annotations

from collections.abc import Iterable

MARK = "voicefleet.io/"  # the prefix of voicefleet's labels and annotations


def account(namespace: str, name: str) -> str:
    """The user name the API server gives a ServiceAccount's token."""
    return f"system:serviceaccount:{namespace}:{name}"


def writable(value: str) -> bool:
    """Whether `literal` can write the value: no quote or backslash, which would end or escape the string."""
    return "'" not in value and "\\" not in value


def literal(value: str) -> str:
    if not writable(value):
        raise ValueError(f"{value!r} cannot be written into the admission policy's CEL")
    return f"'{value}'"


def quoted(values: Iterable[str]) -> str:
    return "[" + ", ".join(literal(value) for value in values) + "]"


def empty(field: str) -> str:
    """CEL: the list, map or string `field` is unset or empty (the API server drops an empty one)."""
    return f"(!has({field}) || size({field}) == 0)"


def off(field: str) -> str:
    """CEL: the boolean `field` is unset or false."""
    return f"(!has({field}) || !{field})"


def same_marks(kind: str) -> str:
    """CEL: an update leaves the object's `voicefleet.io/` `kind` (labels or annotations) as they were."""
    new = f"(has(object.metadata.{kind}) ? object.metadata.{kind} : {{}})"
    old = f"(has(oldObject.metadata.{kind}) ? oldObject.metadata.{kind} : {{}})"
    return (f"{new}.filter(k, k.startsWith('{MARK}')).all(k, k in {old} && {old}[k] == {new}[k]) && "
            f"{old}.filter(k, k.startsWith('{MARK}')).all(k, k in {new})")
