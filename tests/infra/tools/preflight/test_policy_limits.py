"""Azure Policy definitions within the limits Azure enforces when one is created
(stacks/tools/preflight/policy_limits.py): at most 5 field count expressions over one array."""

from __future__ import annotations

from stacks.azure.launch_policy import CONTAINERS, GROUPS
from stacks.tools.mocks import Run
from stacks.tools.preflight import policy_limits


def _any(array: str) -> dict[str, object]:
    return {"count": {"field": array}, "greater": 0}


def test_the_launch_policy_azure_would_create(azure: Run) -> None:
    """The launch policy refuses a dozen container properties; Azure refuses to create a definition
    that counts over `containers[*]` more than five times, so they share counts."""
    assert [r for r in azure.registrations if r.type == policy_limits.DEFINITION]
    assert policy_limits.violations(azure.registrations) == []


def test_a_sixth_count_over_one_array_is_refused_naming_it() -> None:
    five = {"if": {"anyOf": [_any(CONTAINERS) for _ in range(5)]}, "then": {"effect": "Deny"}}
    assert policy_limits.rule_violations(five) == []
    six = {"if": {"anyOf": [*five["if"]["anyOf"], {"not": _any(CONTAINERS.upper())}, _any(f"{GROUPS}/volumes[*]")]},
           "then": {"effect": "Deny"}}
    (found,) = policy_limits.rule_violations(six)
    assert found.startswith("6 field count expressions over " + CONTAINERS.lower())
