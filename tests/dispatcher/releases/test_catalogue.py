"""Which releases exist: a stack's RELEASES, a developer's BOT_RELEASES, or one named `default`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.key_defaults import key_defaults
from dispatcher.settings import SettingsError, hash_api_key


def test_no_configuration_is_one_release_named_default_launching_the_providers_own() -> None:
    catalogue = Catalogue.from_env({}, local=False)
    assert catalogue.names == ("default",) and catalogue.newest.image_for("daily") is None


def test_a_stacks_releases_name_what_each_transport_launches() -> None:
    raw = json.dumps({"releases": [{"name": "r-1", "images": {"daily": "td:1", "webrtc": "td-w:1"}},
                                   {"name": "r-2", "images": {"*": "td:2"}, "created": "2026-11-25T10:00:00Z"}],
                      "canaryPercent": 5})
    catalogue = Catalogue.from_env({"RELEASES": raw}, local=False)
    assert catalogue.names == ("r-1", "r-2") and catalogue.canary_percent == 5
    assert catalogue.get("r-1").image_for("webrtc") == "td-w:1"  # type: ignore[union-attr]
    assert catalogue.newest.image_for("websocket") == "td:2"


@pytest.mark.parametrize("raw", [
    "not json", "{}", '{"releases": []}', '{"releases": [{"name": "Bad_Name", "images": {"*": "x"}}]}',
    '{"releases": [{"name": "a", "images": {}}]}', '{"releases": [{"name": "a", "images": {"*": "x"}}], '
    '"canaryPercent": 101}', '{"releases": [{"name": "a", "images": {"*": "x"}}, {"name": "a", "images": {"*": "y"}}]}',
])
def test_a_malformed_releases_setting_stops_the_dispatcher_saying_what_is_wrong(raw: str) -> None:
    with pytest.raises(SettingsError):
        Catalogue.from_env({"RELEASES": raw}, local=False)


def test_a_cloud_release_with_env_is_refused_rather_than_launched_without_it() -> None:
    raw = json.dumps({"releases": [{"name": "r-1", "images": {"*": "td:1"}, "env": {"PROMPT": "v2"}}]})
    with pytest.raises(SettingsError, match="remove `env`"):
        Catalogue.from_env({"RELEASES": raw}, local=False)
    assert Catalogue.from_env({"RELEASES": raw}, local=True).newest.env == {"PROMPT": "v2"}


def test_local_releases_are_bot_files_with_their_own_python(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text("async def bot(args): ...\n")
    (tmp_path / "bot_v2.py").write_text("async def bot(args): ...\n")
    env = {"BOT_RELEASES": f"stable={tmp_path}/bot.py,next={tmp_path}/bot_v2.py@/opt/venv/bin/python",
           "RELEASE_WEIGHTS": "stable=90,next=10"}
    catalogue = Catalogue.from_env(env, local=True)
    assert catalogue.first_weights == {"stable": 90, "next": 10}
    assert catalogue.get("next").env == {"BOT_PYTHON": "/opt/venv/bin/python"}  # type: ignore[union-attr]
    assert catalogue.get("stable").image_for("webrtc") == str(tmp_path / "bot.py")  # type: ignore[union-attr]


def test_a_missing_bot_file_or_weights_not_adding_up_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="is not a file"):
        Catalogue.from_env({"BOT_RELEASES": f"a={tmp_path}/missing.py"}, local=True)
    (tmp_path / "bot.py").write_text("")
    with pytest.raises(SettingsError, match="add up to 90"):
        Catalogue.from_env({"BOT_RELEASES": f"a={tmp_path}/bot.py", "RELEASE_WEIGHTS": "a=90"}, local=True)


def test_bot_files_are_a_local_dispatchers_only(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text("")
    with pytest.raises(SettingsError, match="RELEASES"):
        Catalogue.from_env({"BOT_RELEASES": f"a={tmp_path}/bot.py"}, local=False)


def test_a_keys_default_release_is_named_by_its_digest_never_the_key() -> None:
    keys = frozenset({hash_api_key("tester-key"), hash_api_key("customer-key")})
    prefix = hash_api_key("tester-key").hex()[:12]
    defaults = key_defaults({"DISPATCHER_API_KEY_RELEASES": f"staging={prefix}"}, keys, lambda h: h.hex()[:4])
    assert defaults == {hash_api_key("tester-key").hex()[:4]: "staging"}
    with pytest.raises(SettingsError, match="matches 0"):
        key_defaults({"DISPATCHER_API_KEY_RELEASES": "staging=000000000000"}, keys, lambda h: "x")
    with pytest.raises(SettingsError, match="12"):
        key_defaults({"DISPATCHER_API_KEY_RELEASES": f"staging={prefix[:6]}"}, keys, lambda h: "x")
