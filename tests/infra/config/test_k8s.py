"""The k8s stack's keys (stacks/config/k8s.py): each bad value refused with one message naming the key."""

from __future__ import annotations

import pytest

from stacks.config.settings import SettingsError
from tests.infra.conftest import StackRunner
from tests.infra.k8s.conftest import ALL_SECRETS


def error(stack: StackRunner, secrets: dict[str, str] | None = None, plaintext: tuple[str, ...] = (),
          **overrides: str) -> str:
    with pytest.raises(SettingsError) as caught:
        stack("k8s", secrets=ALL_SECRETS if secrets is None else secrets, plaintext=plaintext, **overrides)
    return str(caught.value)


def without(key: str) -> dict[str, str]:
    return {k: v for k, v in ALL_SECRETS.items() if k != f"voicefleet:{key}"}


def test_the_kubeconfig_is_required_and_never_plain(stack: StackRunner) -> None:
    message = error(stack, secrets=without("k8sKubeconfig"))
    assert "voicefleet:k8sKubeconfig is required" in message and "--secret" in message
    message = error(stack, plaintext=("voicefleet:k8sKubeconfig",))
    assert "voicefleet:k8sKubeconfig is stored in plain text" in message


def test_the_store_url_is_required_for_the_replicas(stack: StackRunner) -> None:
    message = error(stack, secrets=without("k8sStoreUrl"))
    assert "voicefleet:k8sStoreUrl is required" in message and "pulumi config set --secret k8sStoreUrl" in message


def test_one_replica_is_refused(stack: StackRunner) -> None:
    assert "voicefleet:k8sDispatcherReplicas must be at least 2" in error(stack, k8sDispatcherReplicas="1")


@pytest.mark.parametrize("key", ["k8sDispatcherImage", "k8sBotImage"])
def test_images_must_be_named_by_digest(stack: StackRunner, key: str) -> None:
    message = error(stack, **{key: "registry.example.com/bot:latest"})
    assert f"voicefleet:{key} must be an image by digest" in message and "images/ci/build.sh" in message


@pytest.mark.parametrize(("key", "value"), [("k8sBotCpu", "lots"), ("k8sBotCpu", "0"), ("k8sBotMemory", "1G"),
                                            ("k8sDispatcherCpu", "1.5Gi"), ("k8sBotMemory", "99999999999999999999Gi"),
                                            ("k8sBotMemory", "8796093022208Mi"), ("k8sBotMemory", "8Ei"),
                                            ("k8sBotMemory", "9" * 5000 + "Mi")])
def test_sizes_must_be_quantities_the_stack_can_count(stack: StackRunner, key: str, value: str) -> None:
    assert f"voicefleet:{key} must be" in error(stack, **{key: value})


def test_the_bots_get_a_namespace_of_their_own(stack: StackRunner) -> None:
    message = error(stack, k8sBotNamespace="voicefleet")
    assert "voicefleet:k8sBotNamespace must differ from k8sDispatcherNamespace" in message
    assert "voicefleet:k8sBotNamespace must match" in error(stack, k8sBotNamespace="Bots_NS")


def test_the_host_is_required(stack: StackRunner) -> None:
    assert "voicefleet:k8sDispatcherHost is required" in error(stack, k8sDispatcherHost="")


BOT_KEYS = {"voicefleet:deepgramApiKey": "SENTINEL-dg", "voicefleet:cartesiaApiKey": "SENTINEL-ca",
            "voicefleet:openaiApiKey": "SENTINEL-oa"}


def test_the_bots_keys_are_taken_on_k8s(stack: StackRunner) -> None:
    """They were refused (`botSecrets is not supported on k8s yet`): now the stack writes them into the bots'
    Secret (tests/infra/k8s/test_bot_secret.py)."""
    stack("k8s", secrets={**ALL_SECRETS, **BOT_KEYS})


def test_a_secret_of_the_teams_own_is_exclusive_with_bot_secrets_and_says_how_to_keep_one(
        stack: StackRunner) -> None:
    message = error(stack, secrets={**ALL_SECRETS, **BOT_KEYS}, k8sBotSecret="team-bot-keys")
    assert "voicefleet:k8sBotSecret is set beside botSecrets" in message
    assert "pulumi config rm k8sBotSecret" in message and "pulumi config rm --path botSecrets" in message
    assert "SENTINEL" not in message


@pytest.mark.parametrize("name", ["Team_Keys", "-keys", "keys/other", "x" * 254])
def test_a_secret_of_the_teams_own_is_named_as_kubernetes_names_one(stack: StackRunner, name: str) -> None:
    message = error(stack, k8sBotSecret=name)
    assert "voicefleet:k8sBotSecret must be a Secret's name in k8sBotNamespace" in message


def test_the_channel_is_required_in_either_mode_by_the_key_a_user_sets(stack: StackRunner) -> None:
    """The dispatcher refuses MACHINES=k8s without its channel; the stack says so first, with its own key
    (not the dispatcher's `BOT_CHANNEL_TOKEN and BOT_CHANNEL_URL`)."""
    for mode in ({}, {"k8sMode": "agent-sandbox", "k8sDeployer": "ci@example.com"}):
        message = error(stack, secrets=without("botChannelToken"), botChannel="false", **mode)
        assert "voicefleet:botChannel must be true on k8s" in message, message
        assert "pulumi config set botChannel true" in message and "BOT_CHANNEL" not in message
    stack("k8s", secrets=without("botChannelToken"))  # left unset, k8s derives it (its token the stack's own)


def test_a_store_password_is_refused_with_the_url_named(stack: StackRunner) -> None:
    secrets = {**ALL_SECRETS, "voicefleet:storePassword": "SENTINEL-store-password-0123456789abcd"}
    message = error(stack, secrets=secrets)
    assert "voicefleet:storePassword is not used with k8sStore external" in message and "k8sStoreUrl" in message
    assert "k8sStore in-cluster" in message


IN_CLUSTER_SECRETS = {**without("k8sStoreUrl"), "voicefleet:storePassword": "SENTINEL-store-password-0123456789abcd"}


def test_the_in_cluster_store_refuses_a_url(stack: StackRunner) -> None:
    message = error(stack, secrets={**ALL_SECRETS, **IN_CLUSTER_SECRETS}, k8sStore="in-cluster")
    assert "voicefleet:k8sStoreUrl is not used with k8sStore in-cluster" in message
    assert "pulumi config rm k8sStoreUrl" in message
    stack("k8s", secrets=IN_CLUSTER_SECRETS, k8sStore="in-cluster")  # and with both right, it runs


def test_the_store_kind_and_its_volume_are_checked(stack: StackRunner) -> None:
    assert "voicefleet:k8sStore must be one of" in error(stack, k8sStore="managed")
    message = error(stack, secrets=IN_CLUSTER_SECRETS, k8sStore="in-cluster", k8sStoreStorage="1T")
    assert "voicefleet:k8sStoreStorage must be a volume's size in Mi or Gi" in message


def test_a_managed_turn_relay_is_refused_with_the_way_out(stack: StackRunner) -> None:
    secrets = {**ALL_SECRETS, "voicefleet:turnSharedSecret": "SENTINEL-turn-shared-secret-0123456789abcdef"}
    message = error(stack, secrets=secrets, turn="managed")
    assert "voicefleet:turn managed is not supported on k8s" in message
    assert "public UDP port range" in message and "pulumi config set turn external" in message
    assert "a cloud stack's `turn: managed`" in message


def test_the_mode_is_pods_or_agent_sandbox_and_says_both(stack: StackRunner) -> None:
    message = error(stack, k8sMode="sandbox")
    assert "voicefleet:k8sMode must be one of pods, agent-sandbox" in message and "'sandbox'" in message


def test_agent_sandbox_needs_the_deployers_user_name(stack: StackRunner) -> None:
    message = error(stack, k8sMode="agent-sandbox")
    assert "voicefleet:k8sDeployer is required with k8sMode agent-sandbox" in message
    assert "kubectl auth whoami" in message
    # It is written into the admission policy's CEL as a quoted string.
    assert "voicefleet:k8sDeployer must be a user name" in error(stack, k8sMode="agent-sandbox",
                                                                  k8sDeployer="x' || true || '")


def test_the_sandbox_controller_is_a_service_account(stack: StackRunner) -> None:
    message = error(stack, k8sSandboxController="agent-sandbox-controller")
    assert "voicefleet:k8sSandboxController must be a ServiceAccount as namespace/name" in message
