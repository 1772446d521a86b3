"""The environment a stack gives its dispatcher container(s), as the offline plan registers it.

Read from the plan's own run of the program under mocks (stacks/tools/plan.py `stack_config`,
stacks/tools/mocks.py `run_program`): whatever builds the env on a cloud (stacks/aws/dispatcher.py,
stacks/gcp/dispatcher.py, stacks/azure/stack.py, stacks/k8s/) is what is read back, so there is no
second derivation to drift. A variable the container takes by reference (a Secrets Manager
`valueFrom`, a Cloud Run `secretKeyRef`, a Container Apps `secretRef`, a Kubernetes `valueFrom`) or as
a Pulumi secret is present but masked: its name is kept, never its value.

`refusals` is what the plan adds to its violations: what the dispatcher's own check
(dispatcher/serving/config_report.py `faults`, the one `voicefleet config check` runs) refuses in
that environment, with each masked secret standing in as set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stacks.shared.contract import DISPATCHER_CONTAINER_NAME
from stacks.tools.mocks import Registration, decode_json, is_secret

# The keys a container's environment sits under, by platform: ECS `environment`, Cloud Run `envs`,
# Container Apps and Kubernetes `env`; ECS lists its references apart, under `secrets`.
ENV_FIELDS = ("environment", "envs", "env")
REFERENCE_FIELD = "secrets"
# What the platform sets in every container of a resource type, which the dispatcher reads: a Pod's
# API server address (the kubelet's service variables; dispatcher/machines/k8s/settings.py).
PLATFORM_ENV: dict[str, dict[str, str]] = {
    "kubernetes:apps/v1:Deployment": {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
}
# A masked secret whose shape the dispatcher checks: its stand-in has that shape (a Kubernetes stack
# keeps the store's URL, password and all, in a Secret).
SHAPED_STAND_INS = {"REDIS_URL": "rediss://:stand-in-password@stand-in.invalid:6379/0"}
MASKED = "(a Pulumi secret of the stack, set)"  # what a line shows instead of a stand-in


@dataclass(frozen=True)
class DispatcherEnv:
    """One dispatcher container's environment: plain values, and the names it holds as secrets."""

    resource: str  # the registered resource's name (a task definition, a service, an app, a Deployment)
    plain: dict[str, str]
    masked: frozenset[str]
    platform: Mapping[str, str] = field(default_factory=dict)  # what the platform adds (PLATFORM_ENV)

    def masked_lines(self, lines: Iterable[str]) -> list[str]:
        """What a check said of this environment, each secret's stand-in (a value of this tool's, never
        the user's) shown as MASKED: a refusal quoting a value never passes a stand-in off as theirs."""
        found = list(lines)
        for name in self.masked:
            found = [line.replace(stand_in(name), MASKED) for line in found]
        return found

    def with_stand_ins(self) -> dict[str, str]:
        """The environment the container runs with, every masked variable set to a stand-in: a check
        treats it as set. Each stand-in is its own (two secrets never compare equal) and long enough for
        every length rule."""
        return {**self.platform, **self.plain, **{name: stand_in(name) for name in self.masked}}


def stand_in(name: str) -> str:
    """A masked variable's value for a check: printable, no separators, 48 characters."""
    if name in SHAPED_STAND_INS:
        return SHAPED_STAND_INS[name]
    return "masked" + hashlib.sha256(name.encode()).hexdigest()[:42]


def dispatcher_envs(registrations: Iterable[Registration]) -> list[DispatcherEnv]:
    """Every dispatcher container the run registered, by resource name."""
    found: list[DispatcherEnv] = []
    for registration in sorted(registrations, key=lambda r: r.urn):
        for container in _containers(registration.inputs):
            env = _env(registration.name, container)
            found.append(replace(env, platform=PLATFORM_ENV.get(registration.type, {})))
    return found


def _containers(value: Any) -> Iterable[dict[str, Any]]:
    value = decode_json(value)  # ECS container definitions are one JSON document
    if is_secret(value):
        return
    if isinstance(value, dict):
        if value.get("name") == DISPATCHER_CONTAINER_NAME and any(key in value for key in ENV_FIELDS):
            yield value
            return
        for inner in value.values():
            yield from _containers(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _containers(inner)


def _env(resource: str, container: Mapping[str, Any]) -> DispatcherEnv:
    plain: dict[str, str] = {}
    masked: set[str] = set()
    entries = [entry for key in ENV_FIELDS for entry in container.get(key) or []]
    for entry in entries:
        name = str(entry["name"])
        value = entry.get("value")
        if "value" in entry and not is_secret(value) and not is_secret(entry):
            plain[name] = _text(value)
        else:  # by reference, or a Pulumi secret
            masked.add(name)
    masked.update(str(entry["name"]) for entry in container.get(REFERENCE_FIELD) or [])
    return DispatcherEnv(resource, plain, frozenset(masked - set(plain)))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the engine sends every number as a float
    return str(value)


def refusals(registrations: Iterable[Registration]) -> list[str]:
    """What the dispatcher would refuse at start-up in each dispatcher container's environment, one line each."""
    from dispatcher.serving.config_report import faults
    from dispatcher.settings.sources import SourceError, resolve

    found: list[str] = []
    for env in dispatcher_envs(registrations):
        try:
            problems = faults(resolve(env.with_stand_ins()))
        except SourceError as exc:
            problems = [str(exc)]
        found += [f"{env.resource}: the dispatcher would refuse its environment: {problem}"
                  for problem in env.masked_lines(problems)]
    return found
