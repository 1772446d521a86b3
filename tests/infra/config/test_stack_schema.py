"""The stack-file schema (docs/reference/stack.schema.json): generated from the key table, which
Pulumi.yaml declares in full, and every stack file of the repository validates against it."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from dispatcher.settings.sources import yaml_1_2
from stacks.config import dispatcher_keys
from stacks.config.key_table import CHOICES, SECRET_KEYS, keys, kinds
from stacks.config.stack_schema import schema
from tests.infra.helpers import ROOT

SCHEMA_FILE = ROOT / "docs" / "reference" / "stack.schema.json"


def _declared() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]


def _stack_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "*Pulumi.*.yaml"], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=30).stdout.split()
    return [path for path in listed if not path.endswith("/Pulumi.yaml") and path != "Pulumi.yaml"]


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def test_the_committed_schema_is_the_tables() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == schema(), (
        "run: uv run --group infra python -m stacks.config.stack_schema > docs/reference/stack.schema.json")


def test_pulumi_yaml_declares_every_key_of_the_table_and_no_other() -> None:
    own = {key for key in _declared() if ":" not in key}
    assert keys() - own == set(), "declare these in Pulumi.yaml's config"
    assert own - keys() == set(), "add these to stacks/config/key_table.py"


def test_every_secret_the_dispatcher_takes_is_a_secret_of_the_table() -> None:
    taken = {entry.key for entry in dispatcher_keys.ENTRIES if entry.how == dispatcher_keys.SECRET}
    assert taken <= SECRET_KEYS


def test_secrets_are_untyped_and_typed_keys_agree_with_the_table() -> None:
    """The CLI refuses a typed `secret: true` key with a default (stacks/tools/preflight/cli_config.py)."""
    for key, spec in _declared().items():
        if ":" in key:
            continue
        if key in SECRET_KEYS:
            assert "type" not in spec, key
        elif "type" in spec:
            assert spec["type"] in kinds(key) or (spec["type"] == "string" and kinds(key) == ("number",)), key


@pytest.mark.parametrize("path", _stack_files())
def test_every_stack_file_of_the_repository_validates(path: str) -> None:
    errors = [error.message for error in _validator().iter_errors(yaml_1_2((ROOT / path).read_text()) or {})]
    assert errors == []


@pytest.mark.parametrize(("key", "value", "because"), [
    ("voicefleet:MAX_CONCURRENT_SESSIONS", "3", "match any of the regexes"),
    ("cloud", "aws", "match any of the regexes"),
    ("voicefleet:dailyApiKey", "in-plain-text", "is not of type 'object'"),
    ("voicefleet:recording", "maybe", "is not one of"),
    ("voicefleet:secretsRoll", "later", "is not one of"),
    ("voicefleet:maxConcurrentSessions", "many", "is not valid under any of the given schemas"),
])
def test_the_schema_refuses_what_the_checks_refuse(key: str, value: str, because: str) -> None:
    errors = [error.message for error in _validator().iter_errors({"config": {key: value}})]
    assert len(errors) == 1 and because in errors[0]


def test_choices_and_secrets_as_the_stack_files_hold_them_pass() -> None:
    document = {"config": {"voicefleet:recording": "consent", "voicefleet:maxConcurrentSessions": "3",
                           "voicefleet:protect": True, "voicefleet:dailyApiKey": {"secure": "AAABAx=="},
                           "voicefleet:botSecrets": {"CARTESIA_API_KEY": {"secure": "AAABBx=="}},
                           "voicefleet:tags": {"team": "voice"}, "aws:region": "eu-west-1", "mycompany:team": "x"}}
    assert list(_validator().iter_errors(document)) == []
    assert set(CHOICES) <= keys()
