"""A DELETE's DeleteOptions as the API server reads them, before anything is deleted.

The query's parameters, then the body (a `DeleteOptions`, decoded strictly: an unknown field is 400
BadRequest); `ValidateDeleteOptions` (k8s.io/apimachinery pkg/apis/meta/v1/validation): a
`propagationPolicy` other than Foreground, Background or Orphan, or one given with `orphanDependents`,
is 422 Invalid; then, on the object found, its `preconditions` (`uid`, `resourceVersion`): one that
differs is 409 Conflict (the registry's `Preconditions.Check`). A refusal is (code, reason, message).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.fakes.k8s_schema import schema_problems

POLICIES = ("Foreground", "Background", "Orphan")
Refusal = tuple[int, str, str]


def read_options(query: Mapping[str, str], body: Any) -> dict[str, Any] | Refusal:
    """The DELETE's options, or its refusal (400, 422) before the object is looked up."""
    options: dict[str, Any] = {}
    for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
        if key in query:
            options[key] = query[key]
    try:
        if "gracePeriodSeconds" in options:
            options["gracePeriodSeconds"] = int(options["gracePeriodSeconds"])
    except ValueError:
        return 400, "BadRequest", f"invalid gracePeriodSeconds {options['gracePeriodSeconds']!r}"
    if "orphanDependents" in options:
        options["orphanDependents"] = options["orphanDependents"] == "true"
    if body is not None:
        if not isinstance(body, dict):
            return 400, "BadRequest", "the body of a DELETE is a DeleteOptions object"
        unknown, invalid = schema_problems("deleteoptions-meta-v1", body)
        if unknown:
            return 400, "BadRequest", f"strict decoding error: {', '.join(unknown)}"
        if invalid:
            return 400, "BadRequest", f"unable to decode the DeleteOptions: {'; '.join(invalid)}"
        options.update({k: v for k, v in body.items() if k not in ("kind", "apiVersion")})
    policy = options.get("propagationPolicy")
    if policy is not None and options.get("orphanDependents") is not None:
        return 422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: ' \
                               f'"{policy}": orphanDependents and deletionPropagation cannot be both set'
    if policy is not None and policy not in POLICIES:
        return 422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: ' \
                               f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"'
    return options


def precondition_refusal(options: Mapping[str, Any], obj: Mapping[str, Any], what: str) -> Refusal | None:
    """The object's `preconditions` checked against it (409 Conflict when one differs); `what`: `pods "x"`."""
    preconditions = options.get("preconditions") or {}
    metadata = obj.get("metadata") or {}
    for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = preconditions.get(key)
        if wanted is not None and wanted != metadata.get(key):
            return 409, "Conflict", f"Operation cannot be fulfilled on {what}: Precondition failed: {label} in " \
                                    f"precondition: {wanted}, {label} in object meta: {metadata.get(key)}"
    return None
