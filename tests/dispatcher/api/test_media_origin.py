"""The pages' Content Security Policy lets a session's recording play from where it lives and from
nowhere else: the dispatcher itself for the folder store, the bucket's origin for a pre-signed URL
(read off a URL the real S3 store signs, or Cloud Storage's endpoint), never a wildcard."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.api.media_origin import origin_of, sources, store_origin
from dispatcher.api.routers.page import page_csp
from dispatcher.api.routers.status import dashboard_csp
from dispatcher.artifacts.azure_store import AzureBlobStore
from dispatcher.artifacts.gcs_store import GcsStore
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.s3_store import S3Store
from dispatcher.artifacts.signed_paths import SignedPaths
from tests.dispatcher.api.test_status_api import dispatcher

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore reads its credentials from the process: these, and no file or metadata service."""
    nowhere = str(tmp_path / "none")
    for name, value in {**CREDENTIALS, "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere,
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("url", "origin"), [
    ("https://team-calls.s3.eu-west-1.amazonaws.com/voice/a.wav?X-Amz-Signature=ab", "https://team-calls.s3.eu-west-1.amazonaws.com"),
    ("http://127.0.0.1:9000/team-calls/a.wav", "http://127.0.0.1:9000"),
    ("https://user:secret@storage.example.com:8443/b/k", "https://storage.example.com:8443"),
    ("http://[::1]:4443/b", "http://[::1]:4443"),
    ("ftp://files.example.com/a", None),
    ("https://*.example.com/a", None),
    ("https://example.com:notaport/a", None),
    ("/recordings/files/token", None),
])  # fmt: skip
def test_an_origin_is_a_scheme_a_host_and_a_port_and_nothing_a_policy_cannot_hold(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_the_folder_store_plays_from_the_dispatcher_itself(tmp_path: Path) -> None:
    assert store_origin(LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))) is None
    assert "media-src 'self' blob: mediastream:;" in page_csp(None)
    assert "media-src 'self';" in dashboard_csp(None) and "connect-src 'self';" in dashboard_csp(None)


def test_s3_plays_from_the_origin_its_pre_signed_urls_name(aws: None) -> None:
    at_aws = store_origin(S3Store("team-calls", "voice", {"AWS_REGION": "eu-west-1"}))
    assert at_aws is not None and at_aws.startswith("https://") and at_aws.endswith(".amazonaws.com"), at_aws
    assert "team-calls" in at_aws  # virtual-hosted: this bucket's host alone, not every bucket's
    endpoint = S3Store("team-calls", "voice", {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000/", "AWS_REGION": "x"})
    assert store_origin(endpoint) == "http://127.0.0.1:9000"


def test_s3_without_credentials_plays_from_nowhere_else(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert store_origin(S3Store("team-calls", "voice", {"AWS_REGION": "eu-west-1"})) is None


def test_cloud_storage_plays_from_its_endpoint() -> None:
    assert store_origin(GcsStore("team-calls", "voice", {})) == "https://storage.googleapis.com"
    assert store_origin(GcsStore("team-calls", "", {"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"})) == "http://127.0.0.1:4443"


async def test_azure_blob_plays_from_the_containers_own_address() -> None:
    cloud = AzureBlobStore("https://teamcalls.blob.core.windows.net/calls/voice", {})
    emulator = AzureBlobStore("https://127.0.0.1:10000/devstoreaccount1/calls/voice", {})
    try:
        assert store_origin(cloud) == "https://teamcalls.blob.core.windows.net"
        assert store_origin(emulator) == "https://127.0.0.1:10000"
    finally:
        await cloud.aclose()
        await emulator.aclose()


async def test_both_pages_allow_the_configured_bucket_alone(aws: None, tmp_path: Path) -> None:
    env = {"RECORDING_DESTINATION": "s3://team-calls/voice", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000"}
    async with dispatcher(tmp_path, **env) as api:
        policy = (await api.get("/dashboard")).headers["content-security-policy"]
    assert "media-src 'self' http://127.0.0.1:9000;" in policy, policy
    assert "connect-src 'self' http://127.0.0.1:9000;" in policy, policy  # the transcript, read by the page
    assert "*" not in policy and "default-src 'none'" in policy
    assert sources("https://b.example.com", "blob:") == "'self' blob: https://b.example.com"
    assert "media-src 'self' blob: mediastream: https://b.example.com;" in page_csp("https://b.example.com")


class _RefreshingS3Store(S3Store):
    """S3 whose web identity credentials' first refresh STS refused (botocore raises its ClientError from
    the signing), and whose next one worked."""

    refused = 1

    def download_url(self, key: str, seconds: float) -> str:
        from botocore.exceptions import ClientError

        if self.refused:
            self.refused -= 1
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
                              "AssumeRoleWithWebIdentity")
        return super().download_url(key, seconds)


async def test_a_store_that_could_not_sign_yet_is_asked_again_on_the_next_page(aws: None) -> None:
    """Neither a 500 for every later page, nor a policy without the bucket until a restart."""
    from types import SimpleNamespace
    from typing import cast

    from dispatcher.api.media_origin import MediaOrigin
    from dispatcher.artifacts.building import Artifacts

    endpoint = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_REGION": "x"}
    store = _RefreshingS3Store("team-calls", "voice", endpoint)
    artifacts = cast(Artifacts, SimpleNamespace(reader=SimpleNamespace(store=store)))
    media = MediaOrigin()
    assert await media.of(artifacts) is None  # this page: 'self' alone
    assert await media.of(artifacts) == "http://127.0.0.1:9000"
    assert await media.of(artifacts) == "http://127.0.0.1:9000"
