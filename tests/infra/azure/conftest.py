"""Azure stack fixtures shared by the tests beside this file."""

from __future__ import annotations

import pytest

from stacks.tools.mocks import Run
from tests.infra.azure.test_relay import KEY, TURN_SECRET
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS, StackRunner

# A cell in the stack's own subscription and location (tests/infra/conftest.py): it needs no subnet of its own.
OWN_CELL = ('[{"name": "a", "subscription_id": "0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "resource_group": '
            '"voicefleet-azure-test", "location": "westeurope"}]')


@pytest.fixture
def full(stack: StackRunner) -> Run:
    """The stack with everything that adds to the provider's environment: bot keys, a TURN relay, and one cell
    (the stack's own resource group: ACI_CELLS)."""
    secrets = {**SECRETS, **CHANNEL_SECRETS, "voicefleet:turnSharedSecret": TURN_SECRET,
               "voicefleet:deepgramApiKey": "SENTINEL-dg-key", "voicefleet:cartesiaApiKey": "SENTINEL-ca-key",
               "voicefleet:openaiApiKey": "SENTINEL-oa-key"}
    return stack("azure", secrets=secrets, turn="managed", turnSshPublicKey=KEY, aciCells=OWN_CELL)


@pytest.fixture
def relay(stack: StackRunner) -> Run:
    return stack("azure", secrets={**SECRETS, **CHANNEL_SECRETS, "voicefleet:turnSharedSecret": TURN_SECRET},
                 turn="managed", turnSshPublicKey=KEY)
