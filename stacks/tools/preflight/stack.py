"""Every preflight check for one example stack: the CLI's config checks, then names and sizes.

A stack file's header lists the `pulumi config set [--secret] KEY VALUE` lines its owner runs once
(secrets, an account's own certificate); the checks apply them, as a first deploy would.
"""

from __future__ import annotations

from typing import Any

from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES, derived
from stacks.config.project_file import project_document
from stacks.config.reader import DEFAULTS
from stacks.tools.mocks import Invoke, Registration
from stacks.tools.paths import PROJECT_FILE, REPOSITORY, stack_document
from stacks.tools.preflight import (
    bot_runtime,
    cli_version,
    destroy,
    ecr_lifecycle,
    front_door,
    held_subnets,
    iam_scope,
    lifecycle,
    names,
    ordering,
    policy_limits,
    provider_waits,
    readback,
    release_definitions,
    releases,
    secret_access,
    sizes,
    toolchain,
)
from stacks.tools.preflight.cli_config import StackValue, project_errors, stack_errors, stack_values
from stacks.tools.preflight.documented import documented_commands


def documented_values(stack: str) -> dict[str, StackValue]:
    """The stack's config after its documented `pulumi config set` lines (secrets stay ciphertext)."""
    values = stack_values(stack_document(stack))
    for secret, key, value in documented_commands(stack):
        values[f"voicefleet:{key}"] = StackValue("<ciphertext>", secure=True) if secret else StackValue(value)
    return values


def effective(values: dict[str, StackValue], key: str) -> str:
    """A key's value as the program reads it: set, else what the stack's cloud, size or profile derives, else
    its default (an unknown size or profile is the program's error to name, not this check's)."""
    if (given := values.get(f"voicefleet:{key}")) is not None:
        return str(given.value)
    size, profile = (str(v.value) if (v := values.get(f"voicefleet:{name}")) else None for name in ("size", "profile"))
    cloud = str(named.value) if (named := values.get("voicefleet:cloud")) else ""
    found = derived(size if size in SIZE_NAMES else None, profile if profile in PROFILE_NAMES else None,
                    cloud=cloud).get(key)
    return found[0] if found is not None else str(DEFAULTS[key])


def violations(stack: str, registrations: list[Registration], invokes: list[Invoke] | None = None,
               recreated: list[Registration] | None = None, outputs: dict[str, Any] | None = None) -> list[str]:
    """Every check on one run of the program; `recreated` is a second run standing for the same stack
    created again after a destroy (the cloud's assigned ids differ)."""
    project = project_document(PROJECT_FILE)
    values = documented_values(stack)
    found = project_errors(project) + stack_errors(project, stack, values)
    found += toolchain.violations(REPOSITORY) + toolchain.build_context_violations(REPOSITORY, registrations)
    found += cli_version.violations(project, REPOSITORY)
    found += names.violations(registrations) + sizes.violations(registrations)
    found += lifecycle.replacement_violations(registrations, invokes or [])
    found += lifecycle.in_place_violations(registrations) + lifecycle.name_violations(registrations)
    found += lifecycle.replacement_order_violations(registrations)
    found += readback.violations(registrations)
    found += lifecycle.recreate_violations(registrations, recreated) if recreated is not None else []
    found += ordering.violations(registrations) + iam_scope.violations(stack, registrations)
    found += destroy.violations(registrations, outputs) if outputs is not None else []
    found += destroy.direct_vpc_violations(registrations) + provider_waits.violations(registrations)
    found += destroy.retained_name_violations(registrations) + secret_access.violations(registrations)
    found += front_door.violations(registrations) + held_subnets.violations(registrations)
    found += bot_runtime.violations(registrations) + policy_limits.violations(registrations)
    found += ecr_lifecycle.violations(registrations, int(effective(values, "imageRetentionCount")))
    found += releases.violations(registrations, int(effective(values, "releasesKept")))
    found += release_definitions.violations(registrations)
    return found
