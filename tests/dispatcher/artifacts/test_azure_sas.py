"""Where an Azure Blob destination points, in both of its forms, and the one error for anything else;
the store is built for it from the environment as the dispatcher builds it."""

from __future__ import annotations

import pytest

from dispatcher.artifacts.azure_sas import Destination, split_destination
from dispatcher.artifacts.azure_store import AzureBlobStore, block_id
from dispatcher.artifacts.building import build_store
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.settings import SettingsError


@pytest.mark.parametrize(("destination", "expected"), [
    ("https://calls.blob.core.windows.net/voice/team/eu",
     Destination("https://calls.blob.core.windows.net", "calls", "voice", "team/eu")),
    ("https://calls.blob.core.windows.net/voice/", Destination("https://calls.blob.core.windows.net", "calls",
                                                               "voice", "")),
    ("https://calls.blob.core.chinacloudapi.cn/voice/x",
     Destination("https://calls.blob.core.chinacloudapi.cn", "calls", "voice", "x")),
    ("http://127.0.0.1:10000/devstoreaccount1/voice/team",
     Destination("http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", "voice", "team")),
    ("https://azurite:10000/devstoreaccount1/voice", Destination("https://azurite:10000/devstoreaccount1",
                                                                 "devstoreaccount1", "voice", "")),
])
def test_both_forms_of_a_destination_name_the_account_the_container_and_the_prefix(
        destination: str, expected: Destination) -> None:
    assert split_destination(destination) == expected


@pytest.mark.parametrize("destination", [
    "https://calls.blob.core.windows.net", "https://calls.blob.core.windows.net/", "http://127.0.0.1:10000/acct",
    "https://calls.blob.core.windows.net/voice?sv=2023-11-03&sig=x",
    "https://storage.googleapis.com/calls/voice",  # not Azure, nor an emulator's address
])
def test_a_destination_without_a_container_names_the_form(destination: str) -> None:
    with pytest.raises(SettingsError, match=r"https://<account>\.blob\.core\.windows\.net/<container>/<prefix>"):
        build_store(ArtifactSettings.from_env({"RECORDING_DESTINATION": destination}), {})


@pytest.mark.parametrize("destination", ["http://calls.blob.core.windows.net/voice/team",
                                         "http://calls.blob.core.usgovcloudapi.net/voice"])
def test_an_azure_account_over_plain_http_is_refused_before_a_token_or_sas_crosses_it(destination: str) -> None:
    with pytest.raises(SettingsError, match="over HTTPS only"):
        split_destination(destination)


def test_the_dispatcher_builds_the_azure_store_for_a_container_url() -> None:
    env = {"RECORDING": "on", "RECORDING_DESTINATION": "https://calls.blob.core.windows.net/voice/team"}
    store = build_store(ArtifactSettings.from_env(env), env)
    assert isinstance(store, AzureBlobStore)
    assert (store.where, store.prefix) == ("https://calls.blob.core.windows.net/voice/team", "team")


def test_every_block_id_of_a_blob_has_one_length() -> None:
    ids = {block_id("0123456789abcdef", part) for part in (1, 99, 99999)}
    assert len(ids) == 3 and len({len(i) for i in ids}) == 1  # Azure refuses ids of mixed lengths on one blob
