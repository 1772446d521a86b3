"""`dispatcherAdminKeys` is required in every regional stack, secret, and never a client's key."""

from __future__ import annotations

import pytest

from stacks.config.admin_keys import SET_COMMAND
from tests.infra.config.test_settings import error
from tests.infra.conftest import SECRETS, StackRunner

WITHOUT = {k: v for k, v in SECRETS.items() if k != "voicefleet:dispatcherAdminKeys"}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_stack_without_an_admin_key_is_refused_with_the_command_that_makes_one(stack: StackRunner,
                                                                                 cloud: str) -> None:
    message = error(stack, cloud, secrets=WITHOUT)
    assert "voicefleet:dispatcherAdminKeys is required" in message and SET_COMMAND in message
    assert SET_COMMAND == 'pulumi config set --secret dispatcherAdminKeys "$(openssl rand -hex 32)"'


def test_an_admin_key_in_plain_text_is_refused(stack: StackRunner) -> None:
    message = error(stack, "aws", plaintext=("voicefleet:dispatcherAdminKeys",))
    assert "voicefleet:dispatcherAdminKeys is stored in plain text" in message


@pytest.mark.parametrize("admin", ["SENTINEL-client-key-2", "SENTINEL-admin-key-5e2b, SENTINEL-client-key-1 "])
def test_an_admin_key_that_is_also_a_client_key_is_refused_without_showing_it(stack: StackRunner, admin: str) -> None:
    """The dispatcher would refuse to start (dispatcher/settings.py): the preview refuses first."""
    message = error(stack, "gcp", secrets={**SECRETS, "voicefleet:dispatcherAdminKeys": admin})
    assert "voicefleet:dispatcherAdminKeys shares a key with voicefleet:dispatcherApiKeys" in message
    assert "SENTINEL" not in message


def test_an_admin_key_of_commas_only_is_refused(stack: StackRunner) -> None:
    message = error(stack, "azure", secrets={**SECRETS, "voicefleet:dispatcherAdminKeys": " , "})
    assert "voicefleet:dispatcherAdminKeys holds no key" in message
