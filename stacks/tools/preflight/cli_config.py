"""The Pulumi CLI's checks of Pulumi.yaml `config:` and a stack's config, before the program runs.

Written from pulumi/pulumi at 1b5949891b3cefcb9974752b24a5ecef0acc86c8 (2026-08-21):
- project file schema, `$defs.configTypeDeclaration` (allowed attributes, `items` for arrays):
  https://github.com/pulumi/pulumi/blob/1b5949891b3cefcb9974752b24a5ecef0acc86c8/sdk/go/common/workspace/project.json
- `Project.Validate` (not both default and value; a default must match its type; keys of another
  namespace take a `value`, no type) and `ValidateConfigValue` (string, integer incl. numeric
  strings, boolean incl. "true"/"false", array<items>, object):
  https://github.com/pulumi/pulumi/blob/1b5949891b3cefcb9974752b24a5ecef0acc86c8/sdk/go/common/workspace/project.go
- `mergeConfig`: a project-namespaced key with neither default nor value that the stack does not
  set is missing ("Stack 'X' is missing configuration value(s) …"), whether typed or not; defaults
  are then merged in as **plain** values. `validateStackConfigValue`: a typed `secret: true` key
  whose (merged) value is not `secure:` fails ("must be encrypted as it's secret") — so a secret
  key cannot have a default; a typed key's value must be of its type:
  https://github.com/pulumi/pulumi/blob/1b5949891b3cefcb9974752b24a5ecef0acc86c8/pkg/workspace/config.go
  (tests: TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault,
  TestStackConfigSecretIsCorrectlyValidated in pkg/workspace/config_project_test.go).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SIMPLE_TYPES = ("string", "integer", "boolean", "array")
DECLARATION_KEYS = frozenset({"type", "items", "description", "secret", "default", "value"})


@dataclass(frozen=True)
class StackValue:
    """One stack config value as the CLI holds it: stack files store scalars as strings."""

    value: Any  # str for scalars, list/dict for objects
    secure: bool = False


def _declarations(project: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Shorthand `key: value` becomes {default: value} (project namespace) or {value: value}."""
    name = str(project["name"])
    result: dict[str, dict[str, Any]] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict):
            result[key] = dict(spec)
        elif _own_namespace(name, key):
            result[key] = {"default": spec}
        else:
            result[key] = {"value": spec}
    return result


def _own_namespace(project_name: str, key: str) -> bool:
    return ":" not in key or key.startswith(project_name + ":")


def full_key(project_name: str, key: str) -> str:
    return key if ":" in key else f"{project_name}:{key}"


def value_matches(type_name: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """`ValidateConfigValue`, including its leniency for numeric and boolean strings."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value.is_integer()
        if isinstance(value, str):
            try:
                int(value, 10)
            except ValueError:
                return False
            return True
        return False
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(value_matches(str(items.get("type")), items.get("items"), item) for item in value)


def project_errors(project: Mapping[str, Any]) -> list[str]:
    """Schema + `Project.Validate` problems of Pulumi.yaml's `config:` block."""
    errors: list[str] = []
    name = str(project.get("name") or "")
    if not name:
        return ["project is missing a 'name' attribute"]
    for key, spec in (project.get("config") or {}).items():
        if not isinstance(spec, dict):
            continue
        unknown = sorted(set(spec) - DECLARATION_KEYS)
        if unknown:
            errors.append(f"config '{key}': attribute(s) {unknown} not allowed")
        type_name = spec.get("type")
        if type_name is not None and type_name not in SIMPLE_TYPES:
            errors.append(f"config '{key}': type {type_name!r} is not one of {SIMPLE_TYPES}")
        if "default" in spec and "value" in spec:
            errors.append(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        if _own_namespace(name, key):
            if type_name == "array" and "items" not in spec:
                errors.append(f"The configuration key '{key}' declares an array but does not specify "
                              "the underlying type via the 'items' attribute")
            if type_name is not None and spec.get("default") is not None and not value_matches(
                    type_name, spec.get("items"), spec["default"]):
                errors.append(f"The default value specified for configuration key '{key}' is not of "
                              f"the expected type '{type_name}'")
        else:
            if type_name is not None:
                errors.append(f"Configuration key '{key}' is not namespaced by the project and should not "
                              "define a type")
            if "default" in spec:
                errors.append(f"Configuration key '{key}' is not namespaced by the project and should not "
                              "define a default value")
            if spec.get("value") is None:
                errors.append(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")
    return errors


def secure_leaf(value: Any) -> bool:
    """`isSecureValue` (sdk/go/common/resource/config/object.go): a map of one string under `secure`."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


def has_secure_value(value: Any) -> bool:
    """`hasSecureValue`: an object with a secure leaf anywhere. `pulumi config set --secret --path
    'botSecrets.NAME'` writes `botSecrets: {NAME: {secure: v1:…}}`, and the CLI then holds the whole
    object as one secure value (`NewSecureObjectValue`): the program gets it decrypted, as JSON, and
    its key among the secret ones."""
    if secure_leaf(value):
        return True
    if isinstance(value, dict):
        return any(has_secure_value(inner) for inner in value.values())
    return isinstance(value, list) and any(has_secure_value(inner) for inner in value)


def masked(value: Any, mask: str) -> Any:
    """The object with each secure leaf replaced by `mask`: what the program would get, minus the
    plaintext that only the stack's secrets provider can give."""
    if secure_leaf(value):
        return mask
    if isinstance(value, dict):
        return {key: masked(inner, mask) for key, inner in value.items()}
    if isinstance(value, list):
        return [masked(inner, mask) for inner in value]
    return value


def plain_leaves(value: Any, path: str = "") -> list[str]:
    """The `--path` of each leaf of an object that is not a secure value: inside an object with any
    secure leaf the CLI hands the program the whole object as one secret, so a leaf set without
    `--secret` is plain text in the stack file that the program sees as secret."""
    if secure_leaf(value):
        return []
    if isinstance(value, dict):
        return [leaf for key, inner in value.items() for leaf in plain_leaves(inner, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [leaf for index, inner in enumerate(value) for leaf in plain_leaves(inner, f"{path}[{index}]")]
    return [path]


def stack_values(stack_file: Mapping[str, Any]) -> dict[str, StackValue]:
    """A Pulumi.<stack>.yaml's `config:` as the CLI reads it (scalars are strings)."""
    values: dict[str, StackValue] = {}
    for key, raw in (stack_file.get("config") or {}).items():
        if secure_leaf(raw):
            values[key] = StackValue("<ciphertext>", secure=True)
        elif has_secure_value(raw):
            values[key] = StackValue(masked(raw, "<ciphertext>"), secure=True)
        elif isinstance(raw, bool):
            values[key] = StackValue("true" if raw else "false")
        elif isinstance(raw, (dict, list)):
            values[key] = StackValue(json.loads(json.dumps(raw)))
        else:
            values[key] = StackValue(str(raw))
    return values


def stack_errors(project: Mapping[str, Any], stack: str, values: Mapping[str, StackValue]) -> list[str]:
    """What `pulumi preview -s <stack>` says about the config before the program starts."""
    name = str(project["name"])
    declared = _declarations(project)
    merged = {full_key(name, k): v for k, v in values.items()}
    missing: list[str] = []
    for key in sorted(declared):
        spec, fk = declared[key], full_key(name, key)
        has_default, has_value = spec.get("default") is not None, spec.get("value") is not None
        if fk not in merged and not has_default and not has_value and _own_namespace(name, key):
            missing.append(key)
        elif fk not in merged and (has_default or has_value):
            merged[fk] = StackValue(spec["default"] if has_default else spec["value"])  # plain, never secure
    if missing:
        return [f"Stack '{stack}' is missing configuration value(s) {', '.join(repr(k) for k in missing)}"]
    errors: list[str] = []
    for key in sorted(declared):
        spec = declared[key]
        type_name = spec.get("type")
        if type_name is None:
            continue
        value = merged[full_key(name, key)]
        if spec.get("secret") and not value.secure:
            errors.append(f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret")
            continue
        if not value.secure and not value_matches(type_name, spec.get("items"), value.value):
            errors.append(f"Stack '{stack}' with configuration key '{key}' must be of type '{type_name}'")
    return errors
