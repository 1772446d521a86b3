"""Azure Policy rules within the limits Azure enforces when a definition is created.

Azure Policy's "Policy rule limits" (learn.microsoft.com, definition-structure-policy-rule, "Limits
enforced during authoring": "Attempts to create or assign policy definitions that exceed these limits
fail"): at most 5 `field count` expressions per array, 10 `value count` expressions per rule. Mocks
accept any rule, so a definition over either limit would pass every offline test and fail the first
`up` at ARM.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from stacks.tools.mocks import Registration, decode_json, unwrap

DEFINITION = "azure-native:authorization:PolicyDefinition"
FIELD_COUNTS_PER_ARRAY = 5
VALUE_COUNTS_PER_RULE = 10


def _counts(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every `count` expression in a rule, nested ones included."""
    if isinstance(node, Mapping):
        if isinstance(node.get("count"), Mapping):
            yield node["count"]
        for value in node.values():
            yield from _counts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _counts(value)


def rule_violations(rule: Mapping[str, Any]) -> list[str]:
    """What in `rule` Azure refuses when the definition is created (module docstring)."""
    counts = list(_counts(rule))
    per_array = Counter(str(count["field"]).lower() for count in counts if "field" in count)
    found = [f"{n} field count expressions over {array} (Azure Policy allows {FIELD_COUNTS_PER_ARRAY} per array): "
             "merge them into one count whose `where` is an anyOf"
             for array, n in sorted(per_array.items()) if n > FIELD_COUNTS_PER_ARRAY]
    values = sum(1 for count in counts if "value" in count)
    if values > VALUE_COUNTS_PER_RULE:
        found.append(f"{values} value count expressions (Azure Policy allows {VALUE_COUNTS_PER_RULE} per rule)")
    return found


def violations(registrations: Iterable[Registration]) -> list[str]:
    return [f"{reg.type} {reg.name}: {problem}"
            for reg in registrations if reg.type == DEFINITION
            for problem in rule_violations(decode_json(unwrap(reg.inputs).get("policyRule")) or {})]
