"""Run the Pulumi program offline under recording mocks: each distinct stack, configuration and
files once, every test given its own copy of the recording (tests/infra/program_cache.py).

Secret config values are distinctive sentinels, so a test can search every recorded input for
them. `stack(cloud, **overrides)` runs a stack with this base configuration plus overrides (keys
without a namespace are voicefleet's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stacks.config.model import Settings
from stacks.tools.mocks import Run
from tests.infra import program_cache
from tests.infra.settings_read import read_settings

# The admin surface's key (stacks/config/admin_keys.py), which every regional stack requires.
ADMIN_KEY = "SENTINEL-admin-key-5e2b"
ADMIN_SECRETS = {"voicefleet:dispatcherAdminKeys": ADMIN_KEY}
SECRETS = {
    "voicefleet:dailyApiKey": "SENTINEL-daily-api-key-7f3a",
    "voicefleet:dispatcherApiKeys": "SENTINEL-client-key-1,SENTINEL-client-key-2",
    **ADMIN_SECRETS,
    # Read only by stacks with a coordination store (several replicas), which require it.
    "voicefleet:storeMessageSecret": "SENTINEL-store-message-secret-0123456789",
}
# The bot control channel (stacks/config/channel.py): the credential, and what AWS needs with it.
CHANNEL_TOKEN = "SENTINEL-bot-channel-token-0123456789abcdef"  # noqa: S105 - a test sentinel
CHANNEL_SECRETS = {"voicefleet:botChannelToken": CHANNEL_TOKEN}
CHANNEL_DOMAIN = "voice.example.com"
CHANNEL = {
    "aws": {"certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/test", "allowPlainHttp": "false",
            "dispatcherDomain": CHANNEL_DOMAIN},
    "gcp": {"dispatcherMaxInstances": "1"},
}
BASE = {
    "aws": {"voicefleet:cloud": "aws", "aws:region": "eu-west-1", "voicefleet:allowPlainHttp": "true"},
    "gcp": {"voicefleet:cloud": "gcp", "gcp:project": "vf-test", "gcp:region": "europe-west4"},
    "azure": {"voicefleet:cloud": "azure", "azure-native:subscriptionId": "0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
              "azure-native:location": "westeurope"},
    "k8s": {"voicefleet:cloud": "k8s", "voicefleet:k8sDispatcherHost": "voice.example.com",
            "voicefleet:k8sDispatcherImage": "registry.example.com/dispatcher@sha256:" + "d" * 64,
            "voicefleet:k8sBotImage": "registry.example.com/bot@sha256:" + "b" * 64},
}
# What a k8s stack needs besides (stacks/config/k8s.py): its cluster's kubeconfig and its store's URL.
K8S_SECRETS = {"voicefleet:k8sKubeconfig": "apiVersion: v1\nkind: Config\n# SENTINEL-kubeconfig-token-4d1c\n",
               "voicefleet:k8sStoreUrl": "rediss://voicefleet:SENTINEL-store-password-9e7b@redis.example.com:6380/0"}

StackRunner = Callable[..., Run]


def config_for(cloud: str, overrides: dict[str, str], secrets: dict[str, str] | None = None) -> dict[str, str]:
    config = {**BASE[cloud], **(SECRETS if secrets is None else secrets), "voicefleet:sourceRevision": "test-rev"}
    for key, value in overrides.items():
        config[key if ":" in key else f"voicefleet:{key}"] = value
    return config


def stack_inputs(cloud: str, overrides: dict[str, str], secrets: dict[str, str] | None = None,
                 plaintext: tuple[str, ...] = ()) -> tuple[dict[str, str], list[str]]:
    """The configuration `stack(cloud, ...)` runs the program with, and which of its keys are secrets."""
    config = config_for(cloud, overrides, secrets)
    given = SECRETS if secrets is None else secrets
    return config, [k for k in config if (k in given or k.endswith(("ApiKey", "Secret"))) and k not in plaintext]


@pytest.fixture
def stack() -> StackRunner:
    def run(cloud: str, *, name: str | None = None, secrets: dict[str, str] | None = None,
            plaintext: tuple[str, ...] = (), generation: int = 1, previous: dict[str, Any] | None = None,
            **overrides: str) -> Run:
        """`generation` 2 stands for the same stack created again after a destroy (new cloud ids);
        `previous`, the outputs of the stack's last `up` (None: this is its first)."""
        config, secret_keys = stack_inputs(cloud, overrides, secrets, plaintext)
        return program_cache.run(config, secret_keys, stack=name or f"{cloud}-test", generation=generation,
                                 previous=previous)

    return run


@pytest.fixture
def stack_settings() -> Callable[..., Settings]:
    """`stack`'s configuration read as the program's first step reads it (tests/infra/settings_read.py), without
    the program's resources: for a claim decided there (a derived value, a refusal), a tenth of a run's CPU."""
    def read(cloud: str, *, name: str | None = None, secrets: dict[str, str] | None = None,
             plaintext: tuple[str, ...] = (), **overrides: str) -> Settings:
        config, secret_keys = stack_inputs(cloud, overrides, secrets, plaintext)
        return read_settings(config, secret_keys, stack=name or f"{cloud}-test")

    return read


@pytest.fixture
def aws(stack: StackRunner) -> Run:
    return stack("aws")


@pytest.fixture
def gcp(stack: StackRunner) -> Run:
    return stack("gcp")


@pytest.fixture
def azure(stack: StackRunner) -> Run:
    return stack("azure")


# A k8s stack's secrets: every stack's, the cluster's and the store's, and the channel's.
K8S_STACK_SECRETS = {**SECRETS, **K8S_SECRETS, **CHANNEL_SECRETS}


@pytest.fixture
def k8s_stack(stack: StackRunner) -> StackRunner:
    def run(**overrides: Any) -> Run:
        return stack("k8s", secrets=overrides.pop("secrets", K8S_STACK_SECRETS), **overrides)

    return run


@pytest.fixture
def k8s(k8s_stack: StackRunner) -> Run:
    return k8s_stack()
