"""docs/reference/stack.schema.json: a JSON Schema of a stack file (`stacks/Pulumi.<stack>.yaml`),
generated from the key table (stacks/config/key_table.py) and Pulumi.yaml's descriptions:

    uv run --group infra python -m stacks.config.stack_schema > docs/reference/stack.schema.json

An editor with the YAML language server checks a stack file against it as it is typed (a first line
`# yaml-language-server: $schema=../docs/reference/stack.schema.json`). Scalars may be strings, as
`pulumi config set` writes them (`"true"`, `"3"`); a secret is a `secure:` value only; a key of the
project's namespace the table does not know is refused, another namespace's is left alone.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

from stacks.config.key_table import CHOICES, PROVIDER_KEYS, SECRET_KEYS, SECRET_MAPS, keys, kinds
from stacks.config.project_file import PROJECT_FILE
from stacks.config.reader import NAMESPACE

SCHEMA_ID = "https://github.com/voicefleet/voicefleet/docs/reference/stack.schema.json"
SECURE = {"type": "object", "required": ["secure"], "additionalProperties": False,
          "properties": {"secure": {"type": "string", "description": "the ciphertext `pulumi config set --secret` "
                                                                      "writes"}}}
_SCALAR_TEXT: dict[str, dict[str, Any]] = {"boolean": {"type": "string", "enum": ["true", "false"]},
                "integer": {"type": "string", "pattern": "^-?[0-9]+$"},
                "number": {"type": "string", "pattern": "^([0-9]+([.][0-9]*)?|[.][0-9]+)?$"}}


def _value(key: str) -> dict[str, Any]:
    """What the stack file may hold for one key of the namespace."""
    if key in SECRET_MAPS:  # `--secret --path 'botSecrets.NAME'`: a map of secrets
        return {"type": "object", "additionalProperties": {"$ref": "#/$defs/secure"}}
    if key in SECRET_KEYS:
        return {"$ref": "#/$defs/secure"}
    if key in CHOICES:
        return {"type": "string", "enum": list(CHOICES[key])}
    shapes: list[dict[str, Any]] = []
    for kind in kinds(key):
        shapes.append({"type": kind})
        if kind in _SCALAR_TEXT:
            shapes.append({**_SCALAR_TEXT[kind]})
        elif kind in ("array", "object") and "string" not in kinds(key):
            shapes.append({"type": "string", "description": "the same as JSON"})
    return shapes[0] if len(shapes) == 1 else {"anyOf": shapes}


def schema() -> dict[str, Any]:
    declared = yaml.safe_load(PROJECT_FILE.read_text()).get("config") or {}
    properties: dict[str, Any] = {}
    for key in sorted(keys()):
        found = declared.get(key)
        spec: dict[str, Any] = found if isinstance(found, dict) else {}
        entry = {"description": " ".join(str(spec.get("description") or "").split()), **_value(key)}
        if key in SECRET_KEYS:
            entry["description"] += " Set with `pulumi config set --secret`."
        properties[f"{NAMESPACE}:{key}"] = entry
    for key, meaning in PROVIDER_KEYS.items():
        properties[key] = {"description": meaning, "type": "string"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "voicefleet stack file (Pulumi.<stack>.yaml)",
        "description": "A stack's configuration; docs/pulumi.md says what each key does.",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                # Another namespace's keys (a provider's, `pulumi:tags`, a team's own) are not this table's.
                "patternProperties": {f"^(?!{NAMESPACE}:)[A-Za-z0-9_.-]+:.+$": {}},
                "additionalProperties": False,
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
            "environment": {},
        },
        "$defs": {"secure": SECURE},
    }


def main() -> int:
    sys.stdout.write(json.dumps(schema(), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
