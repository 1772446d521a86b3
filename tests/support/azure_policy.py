"""A small evaluator of Azure Policy rules over a request body: the subset stacks/azure/launch_policy.py
uses (allOf, anyOf, not; field conditions equals, notEquals, like, in, notIn, exists; count with where,
over an array or a nested one (`a[*].b[*]`: every inner element); the
comparisons greater, less, equals, notEquals), with Azure's semantics: string comparisons ignore case,
`like` takes one `*`, a missing field compares as absent, and inside `count.where` an alias under the
counted array refers to the element being counted.

Aliases map to body paths as Azure lists them (`az provider show -n Microsoft.ContainerInstance
--expand resourceTypes/aliases`); an alias not in `PATHS` raises, so a rule naming a new one fails its
test until it is mapped here. Anything outside the subset raises too, never evaluates to "allowed".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from stacks.tools.preflight.policy_limits import rule_violations

_GROUPS = "Microsoft.ContainerInstance/containerGroups/"
PATHS = {
    "type": "type",
    f"{_GROUPS}containers[*]": "properties.containers[*]",
    f"{_GROUPS}containers[*].image": "properties.containers[*].properties.image",
    f"{_GROUPS}containers[*].command": "properties.containers[*].properties.command",
    f"{_GROUPS}volumes[*]": "properties.volumes[*]",
    f"{_GROUPS}ipAddress.type": "properties.ipAddress.type",
    f"{_GROUPS}subnetIds[*]": "properties.subnetIds[*]",
    f"{_GROUPS}subnetIds[*].id": "properties.subnetIds[*].id",
    f"{_GROUPS}dnsConfig": "properties.dnsConfig",
    f"{_GROUPS}diagnostics": "properties.diagnostics",
    f"{_GROUPS}containers[*].livenessProbe": "properties.containers[*].properties.livenessProbe",
    f"{_GROUPS}containers[*].readinessProbe": "properties.containers[*].properties.readinessProbe",
    f"{_GROUPS}containers[*].securityContext": "properties.containers[*].properties.securityContext",
    f"{_GROUPS}containers[*].environmentVariables[*]": "properties.containers[*].properties.environmentVariables[*]",
    f"{_GROUPS}containers[*].environmentVariables[*].name":
        "properties.containers[*].properties.environmentVariables[*].name",
    f"{_GROUPS}initContainers[*]": "properties.initContainers[*]",
    f"{_GROUPS}extensions[*]": "properties.extensions[*]",
    f"{_GROUPS}sku": "properties.sku",
    f"{_GROUPS}confidentialComputeProperties": "properties.confidentialComputeProperties",
    f"{_GROUPS}containerGroupProfile": "properties.containerGroupProfile",
    f"{_GROUPS}standbyPoolProfile": "properties.standbyPoolProfile",
    f"{_GROUPS}containers[*].configMap": "properties.containers[*].properties.configMap",
    f"{_GROUPS}containers[*].environmentVariables[*].secureValueReference":
        "properties.containers[*].properties.environmentVariables[*].secureValueReference",
    f"{_GROUPS}imageRegistryCredentials[*]": "properties.imageRegistryCredentials[*]",
    f"{_GROUPS}imageRegistryCredentials[*].passwordReference":
        "properties.imageRegistryCredentials[*].passwordReference",
    f"{_GROUPS}secretReferences[*]": "properties.secretReferences[*]",
    f"{_GROUPS}priority": "properties.priority",
    f"{_GROUPS}identityAcls": "properties.identityAcls",
    "identity.type": "identity.type",
}
_MISSING = object()


def denies(rule: Mapping[str, Any], resource_type: str, body: Mapping[str, Any]) -> bool:
    """Whether ARM refuses this request body (a PUT's, or a PATCH's as sent) under `rule` (a Deny rule)."""
    if rule["then"] != {"effect": "Deny"}:
        raise ValueError(f"not a Deny rule: {rule['then']}")
    if refused := rule_violations(rule):  # ARM refuses to create such a definition at all
        raise ValueError(f"Azure refuses this policy definition: {'; '.join(refused)}")
    return _holds(rule["if"], {"type": resource_type, **body}, {})


def _path(alias: str) -> str:
    if alias not in PATHS:
        raise KeyError(f"alias {alias!r} is not mapped to a body path")
    return PATHS[alias]


def _get(node: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _resolve(alias: str, resource: Mapping[str, Any], scope: dict[str, Any]) -> Any:
    """A field's value: under a counted array, relative to the current element; `[*]` elsewhere refused."""
    path = _path(alias)
    for array, element in scope.items():
        if path == array:
            return element
        if path.startswith(array + "."):
            return _get(element, path[len(array) + 1:])
    if "[*]" in path:
        raise ValueError(f"{alias!r}: an array alias outside a count is not in this evaluator's subset")
    return _get(resource, path)


def _elements(alias: str, resource: Mapping[str, Any], scope: dict[str, Any]) -> list[Any]:
    """The counted elements; over a nested array (`a[*].b[*]`), every inner element of every outer one."""
    path = _path(alias)
    if not path.endswith("[*]") or scope:
        raise ValueError(f"count over {alias!r}: an array, outside another count, is this evaluator's subset")
    nodes: list[Any] = [resource]
    for part in path[:-3].split("[*]."):
        nodes = [e for node in nodes if isinstance(found := _get(node, part), list) for e in found]
    return nodes


def _compare(value: Any, condition: Mapping[str, Any]) -> bool:
    (operator, expected), = ((k, v) for k, v in condition.items() if k not in ("field", "count"))
    if operator == "exists":
        return (value is not _MISSING) == (str(expected).lower() == "true")
    if operator in ("in", "notIn"):
        inside = value is not _MISSING and str(value).lower() in {str(e).lower() for e in expected}
        return inside if operator == "in" else not inside
    if operator in ("greater", "less"):
        return bool(value > expected if operator == "greater" else value < expected)
    if operator in ("equals", "notEquals"):
        # Numbers compare as numbers (Pulumi's wire format makes every number a float), strings ignoring case.
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, expected))
        same = value == expected if numbers else (
            value is not _MISSING and str(value).lower() == str(expected).lower())
        return same if operator == "equals" else not same
    if operator == "like":
        if str(expected).count("*") > 1:
            raise ValueError(f"like {expected!r}: Azure allows one wildcard")
        return value is not _MISSING and fnmatch.fnmatchcase(str(value).lower(), str(expected).lower().replace(
            "[", "[[]").replace("?", "[?]"))
    raise ValueError(f"operator {operator!r} is not in this evaluator's subset")


def _holds(condition: Mapping[str, Any], resource: Mapping[str, Any], scope: dict[str, Any]) -> bool:
    if "allOf" in condition:
        return all(_holds(c, resource, scope) for c in condition["allOf"])
    if "anyOf" in condition:
        return any(_holds(c, resource, scope) for c in condition["anyOf"])
    if "not" in condition:
        return not _holds(condition["not"], resource, scope)
    if "count" in condition:
        counted = condition["count"]
        elements = _elements(counted["field"], resource, scope)
        where = counted.get("where")
        array = _path(counted["field"])
        total = sum(1 for e in elements if where is None or _holds(where, resource, {**scope, array: e}))
        return _compare(total, condition)
    if "field" in condition:
        return _compare(_resolve(condition["field"], resource, scope), condition)
    raise ValueError(f"condition not in this evaluator's subset: {condition}")
