"""Invariants both clouds keep: secrets stay in the secret store, names stay put, images by digest."""

from __future__ import annotations

import json

import pytest

from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import SECRETS, StackRunner

SECRET_STORES = {"aws:secretsmanager/secretVersion:SecretVersion", "gcp:secretmanager/secretVersion:SecretVersion",
                 "azure-native:keyvault:Secret"}
BOT_KEYS = {"deepgramApiKey": "SENTINEL-dg", "cartesiaApiKey": "SENTINEL-ca", "openaiApiKey": "SENTINEL-oa"}


def leaked(run: Run, values: list[str]) -> list[str]:
    found = []
    for reg in run.registrations:
        if reg.type in SECRET_STORES:
            continue
        text = json.dumps(unwrap(reg.inputs))
        found += [f"{reg.type} {reg.name}" for value in values for part in value.split(",") if part in text]
    return found


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_secret_config_values_reach_only_the_secret_store(stack: StackRunner, cloud: str) -> None:
    extra = BOT_KEYS if cloud == "aws" else {}
    run = stack(cloud, **extra)
    values = list(SECRETS.values()) + list(extra.values())
    assert leaked(run, values) == []
    stored = [json.dumps(unwrap(r.inputs)) for r in run.registrations if r.type in SECRET_STORES]
    # …and those the stack reads do reach it (one replica has no store, so no store message secret:
    # tests/infra/config/test_store_message_secret.py follows it where there is one)
    read = [v for k, v in {**SECRETS, **extra}.items() if k != "voicefleet:storeMessageSecret"]
    assert [v for v in read if not any(v in s for s in stored)] == []


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_secret_store_values_stay_marked_secret(stack: StackRunner, cloud: str) -> None:
    from stacks.tools.mocks import is_secret

    versions = [r for r in stack(cloud).registrations if r.type in SECRET_STORES]

    def value(inputs: dict) -> object:
        if cloud == "azure":  # Key Vault: properties.value (the properties object itself may be wrapped)
            properties = inputs["properties"]
            return properties if is_secret(properties) else properties["value"]
        return inputs["secretString" if cloud == "aws" else "secretData"]

    assert versions and all(is_secret(value(v.inputs)) for v in versions)


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_names_are_stable_across_runs(stack: StackRunner, cloud: str) -> None:
    first, second = stack(cloud), stack(cloud)
    assert sorted(r.urn for r in first.registrations) == sorted(r.urn for r in second.registrations)
    assert len({r.urn for r in first.registrations}) == len(first.registrations)


def compression_attributes(registry: dict) -> list[str]:
    """The exporter attributes docker-build gives buildkit for an export's compression options, as
    pulumi-docker-build's ExportWithCompression.String (provider/internal/export.go, v0.0.22) builds
    them, its defaults applied: nothing at all when compressionLevel is 0."""
    level = int(registry.get("compressionLevel", 0))
    if level == 0:
        return []
    force = registry.get("forceCompression", False)
    return [f"compression={registry.get('compression', 'gzip')}", f"compression-level={min(level, 22)}",
            f"force-compression={str(force).lower()}"]


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_images_are_pushed_with_a_registry_cache_and_nothing_of_the_revision(stack: StackRunner, cloud: str) -> None:
    images = stack(cloud).of_type("docker-build:index:Image")
    assert sorted(i.name.rsplit("-", 1)[1] for i in images) == ["bot", "dispatcher"]
    for image in images:
        inputs = unwrap(image.inputs)
        assert inputs["platforms"] == ["linux/amd64"]
        if cloud == "aws" and image.name.endswith("-bot"):
            # Fargate pulls the bot image for every task: its layers go out zstd (images/component.py).
            assert inputs["push"] is False
            (export,) = inputs["exports"]
            assert export["registry"]["ociMediaTypes"] is True
            # What reaches buildkit: docker-build drops the compression options at level 0.
            assert set(compression_attributes(export["registry"])) >= {
                "compression=zstd", "compression-level=3", "force-compression=true"}
        else:
            assert inputs["push"] is True and not inputs.get("exports")
        # Relative to the program folder (infra/), where the docker-build plugin runs.
        assert inputs["dockerfile"]["location"] == f"../images/{image.name.rsplit('-', 1)[1]}.Dockerfile"
        assert inputs["context"]["location"] == ".."
        # Review item 9: nothing of the commit in the build's inputs, so the digest follows content.
        assert "test-rev" not in json.dumps(inputs)
        # The only build arguments: the bot project's packages to leave out (its content, not the commit).
        assert set(inputs.get("buildArgs", {})) <= {"BOT_EXCLUDE_PACKAGES", "BOT_DAILY_LEAVES_OUT",
                                                    "BOT_WEBRTC_LEAVES_OUT"} and inputs["tags"][0].endswith(":latest")
        cache = inputs["cacheTo"][0]["registry"]
        assert cache["imageManifest"] is True and cache["ociMediaTypes"] is True
        assert inputs["registries"][0]["username"]


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_revision_is_an_extra_tag_on_the_built_digest(stack: StackRunner, cloud: str) -> None:
    indexes = {i.name: unwrap(i.inputs) for i in stack(cloud).of_type("docker-build:index:Index")
               if i.name.endswith("-revision")}  # AWS also tags its release (tests/infra/aws/test_releases.py)
    assert len(indexes) == 2
    for name, index in indexes.items():
        role = name.rsplit("-", 2)[1]
        assert index["tag"].endswith(f"/{role}:rev-test-rev") or index["tag"].endswith(f"-{role}:rev-test-rev")
        (source,) = index["sources"]
        assert "@sha256:" in source and index["push"] is True


def test_no_revision_means_no_revision_tag(stack: StackRunner) -> None:
    indexes = stack("aws", sourceRevision="").of_type("docker-build:index:Index")
    assert [":rev-" in unwrap(index.inputs)["tag"] for index in indexes] == [False]  # the release's tag alone


def test_a_revision_that_is_not_a_registry_tag_is_refused(stack: StackRunner) -> None:
    from stacks.config.settings import SettingsError

    with pytest.raises(SettingsError, match="voicefleet:sourceRevision"):
        stack("aws", sourceRevision="feature/x")


def test_registry_password_is_passed_as_a_secret(stack: StackRunner) -> None:
    from stacks.tools.mocks import is_secret

    for image in stack("aws").of_type("docker-build:index:Image"):
        registries = image.inputs["registries"]
        # Secretness moves up to the enclosing list/object on the wire.
        assert is_secret(registries) or is_secret(registries[0]) or is_secret(registries[0]["password"])
