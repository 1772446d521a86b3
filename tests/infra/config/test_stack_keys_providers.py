"""stacks/config/stack_keys.py on another namespace's keys: a provider's are those its installed SDK reads."""

from __future__ import annotations

from stacks.config.stack_keys import provider_keys, unknown


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
