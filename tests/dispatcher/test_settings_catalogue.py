"""The catalogue (voicefleet_settings/catalogue.py) is the one list of settings: the checked-in page
and schema are what it generates, it names exactly what the code reads, and each parser's default is
the catalogue's."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dispatcher.machines.fly.provider import FlySettings
from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.media.daily import DailySettings
from dispatcher.settings import Settings
from dispatcher.settings.docs import page, schema
from tests.docs.env_reads import environment_reads
from tests.docs.test_docs import CODE
from voicefleet_settings.catalogue import SECTIONS, SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_page_is_the_generated_one() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == page(), (
        "docs/configuration.md differs from the catalogue: "
        "uv run python -m dispatcher.settings.docs > docs/configuration.md")


def test_the_checked_in_schema_is_the_generated_one() -> None:
    path = ROOT / "docs" / "reference" / "configuration.schema.json"
    assert json.loads(path.read_text()) == schema(), (
        "run: uv run python -m dispatcher.settings.docs --schema > docs/reference/configuration.schema.json")


def test_the_catalogue_names_exactly_what_the_code_reads() -> None:
    read = environment_reads(ROOT / package for package in CODE)
    names = {s.name for s in SETTINGS}
    assert {n: sorted(w) for n, w in read.items() if n not in names} == {}, "read by the code, not in the catalogue"
    assert sorted(names - set(read)) == [], "in the catalogue, read by no code"


def test_each_setting_is_once_in_a_known_section() -> None:
    names = [s.name for s in SETTINGS]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    sections = {s.key for s in SECTIONS}
    assert sorted({s.section for s in SETTINGS} - sections) == []
    assert [s.name for s in SETTINGS if s.row is not None and s.row not in names] == []


def test_defaults_are_of_their_kind() -> None:
    for setting in SETTINGS:
        if setting.default is not None and setting.kind == "integer":
            int(setting.default)
        if setting.default is not None and setting.kind == "number":
            float(setting.default)


def test_secrets_are_marked() -> None:
    secret = {s.name for s in SETTINGS if s.secret}
    assert {"DISPATCHER_API_KEYS", "BOT_CHANNEL_TOKEN", "REDIS_URL", "FLY_API_TOKEN", "WEBHOOK_SECRET"} <= secret
    assert "PORT" not in secret and "DISPATCHER_API_KEY_RELEASES" not in secret


# Parsers that read a mapping alone, with the least each needs: their defaults must be the catalogue's.
PARSERS: dict[str, tuple[Callable[[Mapping[str, str]], Any], dict[str, str]]] = {
    "dispatcher": (Settings.from_env, {}),
    "gce": (GceSettings.from_env, {"GCE_PROJECT": "p", "GCE_ZONE": "z", "GCE_INSTANCE_TEMPLATE": "t"}),
    "fly": (FlySettings.from_env, {"FLY_API_TOKEN": "t", "FLY_APP": "a", "BOT_IMAGE": "i"}),
    "daily": (DailySettings.from_env, {"DAILY_API_KEY": "k"}),
    "modal": (ModalSettings.from_env, {"MODAL_TOKEN_ID": "ak-1", "MODAL_TOKEN_SECRET": "as-1", "MODAL_APP": "a",
                                       "MODAL_BOT_IMAGE": "im-1"}),
}
SECTIONS_READ = {"dispatcher": {"server", "keys", "sessions", "releases", "local", "media", "channel"},
                 "gce": {"gce"}, "fly": {"fly"}, "daily": {"daily"}, "modal": {"modal"}}


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_unset_behaves_as_the_catalogue_default(parser: str) -> None:
    """Setting a variable to its catalogued default parses the same as leaving it unset."""
    parse, required = PARSERS[parser]
    unset = parse(required)
    checked = [s for s in SETTINGS if s.section in SECTIONS_READ[parser] and s.default is not None
               and s.name not in required]
    assert len(checked) >= 5  # the sections hold what this parser reads
    differ = [s.name for s in checked if parse({**required, s.name: s.default}) != unset]
    assert differ == [], "the catalogue's default is not the parser's"


def test_the_schema_takes_a_good_file_and_refuses_an_unknown_name() -> None:
    """What an editor or CI checks a `VOICEFLEET_CONFIG` file with (a JSON Schema validator)."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(schema())
    assert list(validator.iter_errors({"MAX_CONCURRENT_SESSIONS": 50, "PORT": "8080", "LOG_FORMAT": "json"})) == []
    assert [e.message for e in validator.iter_errors({"RESERVE_MAX_IDEL": 3})] == [
        "Additional properties are not allowed ('RESERVE_MAX_IDEL' was unexpected)"]
    assert list(validator.iter_errors({"MAX_CONCURRENT_SESSIONS": "many"})) != []
