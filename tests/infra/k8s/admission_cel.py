"""A ValidatingAdmissionPolicy as the stack sends it, evaluated on the requests a cluster will put to it: its
CEL by cel-python (a CEL implementation of the spec the API server's cel-go follows), its match by the
rules' own semantics (a resource rule names a subresource only as `resource/subresource`; operations and
groups listed, `*` for any)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import celpy


@dataclass(frozen=True)
class Call:
    user: str
    operation: str
    group: str
    resource: str
    subresource: str = ""
    name: str = "x"
    obj: dict[str, Any] | None = field(default_factory=dict)
    old: dict[str, Any] | None = None
    groups: tuple[str, ...] = ("system:authenticated",)
    namespace: str = "voicefleet-bots"


def matches(spec: dict[str, Any], call: Call) -> bool:
    labels = spec["matchConstraints"]["namespaceSelector"]["matchLabels"]
    if labels != {"kubernetes.io/metadata.name": call.namespace}:
        return False
    resource = f"{call.resource}/{call.subresource}" if call.subresource else call.resource
    return any(call.group in rule["apiGroups"] and resource in rule["resources"]
               and (call.operation in rule["operations"] or "*" in rule["operations"])
               for rule in spec["matchConstraints"]["resourceRules"])


def evaluate(expression: str, activation: dict[str, Any]) -> Any:
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression)).evaluate(activation)
    except celpy.CELEvalError as error:  # as the API server: an error is no `true` (failurePolicy Fail)
        return error


def refusal(spec: dict[str, Any], call: Call, *, written: bool = False) -> str | None:
    """The policy's message for the call, or None when it is let through (unmatched, a match condition false,
    or every rule true). `written`: the message its messageExpression writes, as the API server shows it."""
    if not matches(spec, call):
        return None
    request = {"operation": call.operation, "subResource": call.subresource, "name": call.name,
               "namespace": call.namespace, "resource": {"group": call.group, "resource": call.resource},
               "userInfo": {"username": call.user, "groups": list(call.groups)}}
    base = {"request": celpy.json_to_cel(request), "object": celpy.json_to_cel(call.obj),
            "oldObject": celpy.json_to_cel(call.old)}
    conditions = [evaluate(c["expression"], base) for c in spec.get("matchConditions", [])]
    if not all(isinstance(c, celpy.celtypes.BoolType) and bool(c) for c in conditions):
        return None
    variables = celpy.celtypes.MapType()
    for variable in spec.get("variables", []):  # in order: each may read the ones before it
        variables[celpy.celtypes.StringType(variable["name"])] = evaluate(variable["expression"],
                                                                           {**base, "variables": variables})
    for validation in spec["validations"]:
        result = evaluate(validation["expression"], {**base, "variables": variables})
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            if written and "messageExpression" in validation:
                return str(evaluate(validation["messageExpression"], {**base, "variables": variables}))
            return str(validation["message"])
    return None
