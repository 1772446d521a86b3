"""The cloud stores' emulators as a dispatcher records into them (moto's S3, the GCS fake, azurite), each
as a context manager: its environment for the dispatcher, and what a bot must never be handed."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest

from tests.fakes.azurite import azurite
from tests.fakes.azurite import missing as azurite_missing
from tests.fakes.gcs import FakeGcs
from tests.fakes.s3_presigned import ACCESS_KEY, REGION, SECRET_KEY, s3_server
from tests.fakes.server import serve


@dataclass(frozen=True)
class CloudStore:
    """A cloud store's emulator as the dispatcher records into it: its environment, and what a bot
    must never be handed (the names of the dispatcher's credential variables, a secret's value)."""

    env: dict[str, str]
    credential_names: tuple[str, ...]
    secret: str
    ca_file: str | None = None  # what a client trusts to download from it

    def tls(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True


@contextmanager
def s3_store() -> Iterator[CloudStore]:
    """moto's S3 behind the pre-signed URL check."""
    keys = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}
    # The test's own client, and the server's check, see the dispatcher's credentials.
    with mock.patch.dict(os.environ, keys), s3_server() as url:
        s3_client(url).create_bucket(Bucket="team-calls")
        yield CloudStore({"RECORDING_DESTINATION": "s3://team-calls/voice", "AWS_ENDPOINT_URL_S3": url, **keys},
                         ("AWS_",), SECRET_KEY)


@contextmanager
def gs_store() -> Iterator[CloudStore]:
    """The GCS fake that verifies V4 signatures (tests/fakes/gcs.py), the dispatcher signed in with a
    service account's key file the bot must never see."""
    with serve(FakeGcs()) as gcs:
        with mock.patch.dict(os.environ, gcs.env):  # the test's own view of the store signs in as the dispatcher does
            yield CloudStore({"RECORDING_DESTINATION": "gs://team-calls/voice", **gcs.env},
                             ("GOOGLE_", "STORAGE_EMULATOR_HOST"), gcs.credentials_file)


@contextmanager
def azure_store() -> Iterator[CloudStore]:
    """azurite over TLS with OAuth, the dispatcher signed in through a managed identity endpoint; the
    bot trusts azurite's certificate as any host trusts a private CA (SSL_CERT_FILE)."""
    if (why := azurite_missing()) is not None:
        pytest.skip(why)
    with azurite() as emulator:
        emulator.create_container("team-calls")
        yield CloudStore({"RECORDING_DESTINATION": emulator.destination("team-calls", "voice"),
                          "SSL_CERT_FILE": emulator.cert_path, **emulator.identity_env},
                         ("IDENTITY_", "AZURE_", "RECORDING_CA_BUNDLE"), emulator.identity_env["IDENTITY_HEADER"],
                         emulator.cert_path)


def s3_client(url: str) -> Any:
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client("s3", region_name=REGION, endpoint_url=url,
                                                        config=Config(s3={"addressing_style": "path"}))
