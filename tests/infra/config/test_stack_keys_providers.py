"""stacks/config/stack_keys.py on another namespace's keys: a provider's are those its installed SDK reads."""

from __future__ import annotations

import pytest

from stacks.config.settings import SettingsError
from stacks.config.stack_keys import provider_keys, unknown
from tests.infra import program_cache
from tests.infra.conftest import SECRETS, config_for


def test_the_keys_a_provider_reads_come_from_its_sdk() -> None:
    keys = provider_keys()
    assert {"region", "profile"} <= keys["aws"] and {"project", "region", "zone"} <= keys["gcp"]
    assert {"location", "subscriptionId"} <= keys["azure-native"]


def test_a_slip_in_a_providers_namespace_or_in_the_namespace_itself_is_refused() -> None:
    assert unknown(["aws:regoin", "awz:region", "gcp:region"]) == [
        "aws:regoin is no aws provider key: did you mean aws:region?",
        "awz:region is no stack key: did you mean aws:region?",
    ]


def test_a_namespace_no_provider_here_documents_is_left_alone() -> None:
    """pulumi-kubernetes ships no config/vars.py; `pulumi:` is the CLI's own; `mycompany:` is nobody's slip."""
    assert unknown(["kubernetes:context", "pulumi:tags", "mycompany:team"]) == []


def test_another_pulumi_packages_namespace_is_no_slip() -> None:
    """Real packages' config (an ESC environment or a team's template may set it): never refused as a slip of
    a provider here, however alike the names read (aws-native and azure-native, docker and docker-build)."""
    assert unknown(["aws-native:region", "google-native:project", "docker:host", "awsx:foo", "azure:location"]) == []


def test_an_edit_or_two_from_a_namespace_is_a_slip() -> None:
    assert unknown(["gpc:project", "azure-nativ:location", "voicefleat:maxConcurrentSessions"]) == [
        "azure-nativ:location is no stack key: did you mean azure-native:location?",
        "gpc:project is no stack key: did you mean gcp:project?",
        "voicefleat:maxConcurrentSessions is no stack key: did you mean voicefleet:maxConcurrentSessions?",
    ]


def test_a_load_that_stopped_early_names_only_slips() -> None:
    assert unknown(["tls:x", "aws:regoin"], misspelt_only=True) == [
        "aws:regoin is no aws provider key: did you mean aws:region?"]


def test_a_dispatcher_variables_spelling_names_the_stack_key() -> None:
    assert unknown(["voicefleet:MAX_CONCURRENT_SESSIONS"]) == [
        "voicefleet:MAX_CONCURRENT_SESSIONS is no stack key: did you mean maxConcurrentSessions?"]


def test_a_key_without_its_namespace_is_refused_naming_the_full_key() -> None:
    """A stack file's `cloud: aws` was read by nothing (the CLI takes namespace:name keys)."""
    assert unknown(["cloud", "project"]) == [
        "cloud is no stack key: a stack file's keys name their namespace: did you mean voicefleet:cloud?",
        "project is no stack key: a stack file's keys name their namespace: did you mean gcp:project?",
    ]


def test_a_bare_cloud_key_is_named_beside_the_refusal_it_leads_to() -> None:
    config = {key: value for key, value in config_for("aws", {}).items() if key != "voicefleet:cloud"}
    with pytest.raises(SettingsError) as caught:
        program_cache.run({**config, "cloud": "aws"}, list(SECRETS), stack="aws-test", generation=1, previous=None)
    assert "voicefleet:cloud is required" in str(caught.value)
    assert "did you mean voicefleet:cloud?" in str(caught.value)
