"""Azure stack fixtures shared by the tests beside this file."""

from __future__ import annotations

import pytest

from stacks.tools.mocks import Run
from tests.infra.azure.test_relay import KEY, TURN_SECRET
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS, StackRunner


@pytest.fixture
def full(stack: StackRunner) -> Run:
    """The stack with everything that adds to the provider's environment: bot keys and a TURN relay."""
    secrets = {**SECRETS, **CHANNEL_SECRETS, "voicefleet:turnSharedSecret": TURN_SECRET,
               "voicefleet:deepgramApiKey": "SENTINEL-dg-key", "voicefleet:cartesiaApiKey": "SENTINEL-ca-key",
               "voicefleet:openaiApiKey": "SENTINEL-oa-key"}
    return stack("azure", secrets=secrets, turn="managed", turnSshPublicKey=KEY)


@pytest.fixture
def relay(stack: StackRunner) -> Run:
    return stack("azure", secrets={**SECRETS, **CHANNEL_SECRETS, "voicefleet:turnSharedSecret": TURN_SECRET},
                 turn="managed", turnSshPublicKey=KEY)
