"""A Kubernetes type's own JSON schema (kubernetes-validate's strict copy of the API server's OpenAPI), for
the types no `kind` selects: a whole object's `metadata` (ObjectMeta) and a DELETE's DeleteOptions."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
from kubernetes_validate import utils
from referencing import Registry, Resource

KUBE_VERSION = "1.33.0"  # the schema the fakes validate against (kubernetes-validate ships 1.25…1.37)
_DIRECTORY = f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict"


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = utils.schema_contents(f"{_DIRECTORY}/{name}.json", KUBE_VERSION)
    definitions = utils.schema_contents(f"{_DIRECTORY}/_definitions.json", KUBE_VERSION)
    registry: Registry[Any] = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def type_fields(name: str) -> frozenset[str]:
    """The fields the type `name` has (the rest are unknown: pruned, or refused under Strict)."""
    return frozenset(_validator(name).schema.get("properties") or {})


def schema_problems(name: str, value: Any) -> tuple[list[str], list[str]]:
    """(unknown fields, other errors) of `value` against the type `name` (`objectmeta-meta-v1`,
    `deleteoptions-meta-v1`): the API server's strict decoding errors, then its schema's."""
    unknown, invalid = [], []
    for error in _validator(name).iter_errors(value):
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            for field in error.message.split("'")[1::2]:
                unknown.append(f'unknown field "{where + "." if where else ""}{field}"')
        else:
            invalid.append(f"{where or '<root>'}: Invalid value: {error.message[:200]}")
    return unknown, invalid
