"""Named client keys (`name:key` in DISPATCHER_API_KEYS): each name is one caller whatever key of it
is sent, bound to its sessions by the deployment's secret; unnamed keys keep their own caller; a
bad entry is refused at start naming its position, never its text."""

from __future__ import annotations

import pytest

from dispatcher.api.auth import Authenticator
from dispatcher.releases.key_defaults import key_defaults
from dispatcher.sessions.ids import new_session_id, owned_by
from dispatcher.settings import Settings, SettingsError, hash_api_key

SECRET = "deployment-secret-0123456789abcdef-xyz"


def authenticator(keys: str, owner_secret: str = SECRET) -> Authenticator:
    settings = Settings.from_env({"DISPATCHER_API_KEYS": keys})
    return Authenticator(settings.api_key_hashes, None, names=dict(settings.api_key_names),
                         owner_secret=owner_secret.encode())


def test_two_keys_of_one_name_are_one_caller_and_own_the_same_sessions() -> None:
    auth = authenticator("team:old-secret-1,team:new-secret-2,other:third-secret")
    old, new = auth.identify("Bearer old-secret-1"), auth.identify("Bearer new-secret-2")
    assert old == new
    session_id = new_session_id(old.owner_key, None)
    assert owned_by(session_id, new.owner_key)
    other = auth.identify("Bearer third-secret")
    assert other.id != old.id and not owned_by(session_id, other.owner_key)
    assert auth.name_of(old.id) == "team" and auth.names == {"team": old.id, "other": other.id}


def test_a_names_owner_key_comes_from_the_deployments_secret_not_the_name_alone() -> None:
    here = authenticator("team:a-secret").identify("Bearer a-secret")
    elsewhere = authenticator("team:b-secret").identify("Bearer b-secret")
    assert here == elsewhere  # another deployment holding the same secret agrees (regions, replicas)
    other_deployment = authenticator("team:a-secret", owner_secret="another-deployments-secret-0123456789")
    stranger = other_deployment.identify("Bearer a-secret")
    assert stranger.id == here.id and stranger.owner_key != here.owner_key


def test_an_unnamed_key_keeps_its_caller_beside_named_ones() -> None:
    before = Authenticator(frozenset({hash_api_key("plain-key")})).identify("Bearer plain-key")
    after = authenticator("plain-key,team:x-secret").identify("Bearer plain-key")
    assert after == before
    assert authenticator("plain-key,team:x-secret").name_of(after.id) is None


def test_a_key_holding_a_colon_is_read_after_its_name_or_kept_unnamed_with_a_leading_colon() -> None:
    auth = authenticator("team:a:b,:c:d")
    assert auth.name_of(auth.identify("Bearer a:b").id) == "team"
    assert auth.identify("Bearer c:d") == Authenticator(frozenset({hash_api_key("c:d")})).identify("Bearer c:d")
    with pytest.raises(Exception, match="invalid API key"):
        auth.identify("Bearer team:a:b")


@pytest.mark.parametrize(("keys", "message"), [
    ("good-key,Bad_Name:s3cr3t-value", "entry 2 of 2 has a name before ':' that is not"),
    ("team:", "entry 1 of 1 has a name and no key"),
    ("team:s3cr3t-value,crew:s3cr3t-value", "entry 2 of 2 repeats an earlier entry's key under another name"),
    (f"{'a' * 33}:s3cr3t-value", "entry 1 of 1 has a name"),
])
def test_a_bad_entry_is_refused_by_its_position_never_its_text(keys: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as refused:
        Settings.from_env({"DISPATCHER_API_KEYS": keys})
    assert "s3cr3t" not in str(refused.value) and "Bad_Name" not in str(refused.value)
    assert "DISPATCHER_API_KEYS" in str(refused.value)


def test_named_keys_need_a_secret_every_replica_holds() -> None:
    env = {"DISPATCHER_API_KEYS": "team:a-secret", "REDIS_URL": "redis://127.0.0.1:1/0"}
    with pytest.raises(SettingsError, match="set BOT_CHANNEL_TOKEN"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "BOT_CHANNEL_TOKEN": SECRET}).api_key_names


def test_the_share_counts_callers_not_keys() -> None:
    assert Settings.from_env({"DISPATCHER_API_KEYS": "team:a-secret,team:b-secret"}).api_callers == 1
    assert Settings.from_env({"DISPATCHER_API_KEYS": "team:a-secret,plain-key"}).api_callers == 2


def test_a_default_release_is_named_by_a_key_name_for_every_key_of_it() -> None:
    auth = authenticator("tester:a-secret,tester:b-secret,plain-key")
    settings = Settings.from_env({"DISPATCHER_API_KEYS": "tester:a-secret,tester:b-secret,plain-key"})
    env = {"DISPATCHER_API_KEY_RELEASES": f"staging=tester,canary={hash_api_key('plain-key').hex()[:12]}"}
    defaults = key_defaults(env, settings.api_key_hashes, auth.caller_of_hash, auth.names)
    assert defaults == {auth.identify("Bearer b-secret").id: "staging", auth.identify("Bearer plain-key").id: "canary"}
    with pytest.raises(SettingsError, match="a key name"):
        key_defaults({"DISPATCHER_API_KEY_RELEASES": "staging=nobody"}, settings.api_key_hashes,
                     auth.caller_of_hash, auth.names)
