"""What the engine and pulumi-kubernetes do with a stack's Secrets from one `up` to the next, over the mocks'
recordings (which keep no state): the steps of an `up`, and the deletes of a destroy.

The rules modelled, each from the source:

- before the provider sees them, a resource's new inputs take the old inputs' value at every `ignoreChanges`
  path, or lose it where the old inputs have none (pulumi/pulumi pkg/resource/deploy/step_generator.go
  `processIgnoreChanges`, sdk/go/common/resource/properties_path.go `PropertyPath.Reset`); a resource the state
  lacks is created with its inputs as declared (`continueStepsFromImport` ignores nothing without an old state);
- a Secret is replaced when its name or namespace changes, and an immutable one (or any, with the
  provider's `enableSecretMutable` off, as this stack leaves it) when its `type`, `data` or `stringData`
  does (pulumi-kubernetes provider/pkg/provider/diff.go `forceNewProperties`); any other change is an update;
- a replaced resource, and one the program no longer declares, is deleted at the end of the `up`
  (step_generator.go `GenerateDeletes`), but one replaced under the same name is deleted before its
  replacement is made (provider.go `Diff` asks `DeleteBeforeReplace`); a destroy deletes a resource after
  those that depend on it.

The stored inputs are the program's (the provider's Check would move `stringData` into `data`; both paths are
modelled alike). Only Secrets are followed: the other kinds' replacement rules are their own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from stacks.tools.mocks import Registration, Run, unwrap

SECRET = "kubernetes:core/v1:Secret"
FORCE_NEW = ("type", "data", "stringData")


@dataclass
class Steps:
    created: list[str] = field(default_factory=list)  # URNs
    replaced: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # at the end of the `up`
    deleted_first: list[str] = field(default_factory=list)  # replaced under the same name: deleted before its create
    made_without_values: list[str] = field(default_factory=list)  # a create whose values were to come from a state


@dataclass
class SecretState:
    """The Secrets of one stack's state in `namespaces`, URN -> the inputs stored."""

    namespaces: tuple[str, ...]
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    dependents: dict[str, set[str]] = field(default_factory=dict)  # Secret URN -> URNs that depend on it
    retained: set[str] = field(default_factory=set)

    def up(self, run: Run) -> Steps:
        steps, now = Steps(), {}
        for reg in self.followed(run):
            old = self.inputs.get(reg.urn)
            new = dict(reg.inputs) if old is None else ignoring(dict(reg.inputs), old, reg.ignore_changes)
            now[reg.urn] = new
            if old is None:
                steps.created.append(reg.urn)
                if reg.ignore_changes and not any(key in new for key in ("data", "stringData")):
                    steps.made_without_values.append(reg.urn)
            elif replaces(old, new):
                steps.replaced.append(reg.urn)
                # The old object at the end; under the same name first (pulumi-kubernetes provider.go `Diff`:
                # `DeleteBeforeReplace`), so gone while the `up` runs.
                (steps.deleted_first if identity(old) == identity(new) else steps.deleted).append(reg.urn)
            elif unwrap(old) != unwrap(new):
                steps.updated.append(reg.urn)
            else:
                steps.same.append(reg.urn)
        steps.deleted += [urn for urn in self.inputs if urn not in now]
        self.inputs = now
        self.dependents = {urn: {r.urn for r in run.registrations if urn in r.dependencies} for urn in now}
        self.retained = {r.urn for r in self.followed(run) if r.retain_on_delete}
        return steps

    def followed(self, run: Run) -> list[Registration]:
        return [r for r in run.of_type(SECRET) if identity(r.inputs)[1] in self.namespaces]

    def destroyed(self) -> list[str]:
        """The Secrets a destroy deletes (each after its dependents), in state order."""
        return [urn for urn in self.inputs if urn not in self.retained]


def ignoring(inputs: dict[str, Any], old: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """`processIgnoreChanges` for paths of map keys (the only ones the stack ignores on a Secret)."""
    inputs = copy.deepcopy(inputs)
    for path in paths:
        assert "[" not in path, path
        *parents, key = path.split(".")
        was, now = old, inputs
        for parent in parents:  # metadata: never a secret as a whole
            was = was.get(parent) if isinstance(was, dict) else None
            now = now.setdefault(parent, {})
        if isinstance(was, dict) and key in was:
            now[key] = was[key]
        else:
            now.pop(key, None)
    return inputs


def identity(inputs: dict[str, Any]) -> tuple[Any, Any]:
    metadata = unwrap(inputs).get("metadata") or {}
    return metadata.get("name"), metadata.get("namespace")


def replaces(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return identity(old) != identity(new) or any(unwrap(old.get(key)) != unwrap(new.get(key)) for key in FORCE_NEW)


def by_urn(run: Run) -> dict[str, Registration]:
    return {r.urn: r for r in run.registrations}
