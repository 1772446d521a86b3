"""`turn: external` on the k8s stack: the service's URLs as the dispatcher's plain settings, its shared
secret in the dispatcher's Secret by reference only, in both modes; in agent-sandbox mode SmallWebRTC the one
web transport, of the dispatcher and the pool's template alike; an address the bots cannot reach refused."""

from __future__ import annotations

import json

import pytest

from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config.settings import SettingsError
from stacks.k8s.network_policies import unreachable_urls, url_host
from stacks.shared import contract
from stacks.tools.mocks import Run, unwrap
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner, container_env, dispatcher_secret
from tests.infra.k8s.test_agent_sandbox import DEPLOYER, dispatcher_env, pod_template
from tests.infra.k8s.test_stack import masked

SHARED_SECRET = "SENTINEL-turn-shared-secret-0123456789abcdef"  # noqa: S105 - a test sentinel
TURN_SECRETS = {**ALL_SECRETS, "voicefleet:turnSharedSecret": SHARED_SECRET}
URLS = "turn:turn.example.com:3478?transport=udp,turns:turn.example.com:443?transport=tcp"
MODES = {"pods": {}, "agent-sandbox": {"k8sMode": "agent-sandbox", "k8sDeployer": DEPLOYER}}


def with_turn(k8s_stack: K8sRunner, urls: str = URLS, **overrides: str) -> Run:
    return k8s_stack(secrets=TURN_SECRETS, turn="external", turnUrls=urls, **overrides)


@pytest.mark.parametrize("mode", MODES)
def test_the_dispatcher_gets_the_services_urls_plain_and_its_secret_by_reference(k8s_stack: K8sRunner,
                                                                                  mode: str) -> None:
    run = with_turn(k8s_stack, **MODES[mode])
    env = container_env(run)
    plain = {name: entry["value"] for name, entry in env.items() if "value" in entry}
    assert set(contract.TURN_ENV) <= set(plain)
    assert plain["TURN_URLS"] == URLS
    # agent-sandbox: every bot is a pod of the pool's one template, booting SmallWebRTC, the relay's transport.
    offered = {"pods": "daily,webrtc", "agent-sandbox": "webrtc"}[mode]
    assert plain["TRANSPORTS"] == offered and plain["DEFAULT_TRANSPORT"] == offered.split(",")[0]
    assert plain["ICE_TRANSPORT_POLICY"] == "relay"
    assert plain["TURN_CREDENTIALS_PER_KEY"].isdigit()
    secret_name = unwrap(dispatcher_secret(run).outputs)["metadata"]["name"]
    assert env["TURN_SHARED_SECRET"] == {
        "name": "TURN_SHARED_SECRET", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "TURN_SHARED_SECRET"}}}
    assert unwrap(dispatcher_secret(run).inputs)["stringData"]["TURN_SHARED_SECRET"] == SHARED_SECRET
    # …and the secret is nowhere in plain: not in the pod spec, the template, the policies or an output.
    assert [(r.type, r.name) for r in run.registrations if SHARED_SECRET in json.dumps(masked(r.inputs))] == []
    assert SHARED_SECRET not in json.dumps(masked(unwrap(run.outputs)), default=str)


def template_env(run: Run) -> dict[str, str | None]:
    (container,) = pod_template(run)["spec"]["containers"]
    return {entry["name"]: entry.get("value") for entry in container["env"]}


@pytest.mark.parametrize(("turn", "transport"), [(True, "webrtc"), (False, "daily")])
def test_the_pool_bots_boot_the_one_web_transport_the_dispatcher_offers(k8s_stack: K8sRunner, turn: bool,
                                                                         transport: str) -> None:
    run = with_turn(k8s_stack, **MODES["agent-sandbox"]) if turn else k8s_stack(**MODES["agent-sandbox"])
    env = template_env(run)
    assert env["BOT_TRANSPORT"] == transport
    assert dispatcher_env(run).get("TRANSPORTS", "daily") == transport  # the dispatcher's default: daily
    assert not any(name.startswith("TURN_") for name in env)


def test_the_dispatcher_takes_the_stacks_settings_and_refuses_two_web_transports_in_agent_sandbox_mode(
        k8s_stack: K8sRunner) -> None:
    env = {**dispatcher_env(with_turn(k8s_stack, **MODES["agent-sandbox"])), "K8S_API_URL": "https://k.example"}
    assert K8sSettings.from_env(env).pool_transport == "webrtc"
    # Defense in depth: a TRANSPORTS the template cannot serve stops the dispatcher at start, saying why.
    for transports in ("daily,webrtc", "webrtc,daily"):
        with pytest.raises(DispatcherSettingsError) as caught:
            K8sSettings.from_env({**env, "TRANSPORTS": transports, "DEFAULT_TRANSPORT": ""})
        message = str(caught.value)
        assert "K8S_MODE=agent-sandbox" in message and "BOT_TRANSPORT" in message
        assert "set TRANSPORTS=webrtc with a TURN relay" in message and "\n" not in message
    pods = {**env, "TRANSPORTS": "daily,webrtc", "DEFAULT_TRANSPORT": "", "K8S_MODE": "pods"}
    assert K8sSettings.from_env(pods).pool_transport == "daily"  # bare pods: each launched in its session's


def test_without_turn_the_dispatcher_offers_daily_alone(k8s: Run) -> None:
    env = container_env(k8s)
    assert not set(contract.TURN_ENV) & set(env) and "TURN_SHARED_SECRET" not in env


def test_the_relay_needs_the_channel(k8s_stack: K8sRunner) -> None:
    secrets = {k: v for k, v in TURN_SECRETS.items() if k != "voicefleet:botChannelToken"}
    with pytest.raises(SettingsError, match="botChannel must be true with a TURN relay"):
        k8s_stack(secrets=secrets, turn="external", turnUrls=URLS, botChannel="false")
    k8s_stack(secrets=secrets, turn="external", turnUrls=URLS)  # left unset, k8s derives the channel


@pytest.mark.parametrize("urls", ["turn:10.0.4.2:3478?transport=udp", "turn:[2001:db8::1]:3478",
                                  "turn:turn.example.com:3478,turns:192.168.1.9:443?transport=tcp",
                                  "turn:34.118.10.7:3478"])
def test_an_address_the_bots_cannot_reach_is_refused_at_preview(k8s_stack: K8sRunner, urls: str) -> None:
    with pytest.raises(SettingsError) as caught:
        with_turn(k8s_stack, urls, k8sBotEgressExcept='["34.118.10.0/24"]')
    message = str(caught.value)
    assert "which the bots cannot reach" in message and "k8sBotEgressExcept" in message
    assert "turn.example.com" not in message  # only the unreachable ones are named


def test_public_addresses_and_names_pass() -> None:
    urls = ["turn:turn.example.com:3478", "turn:34.118.11.7:3478?transport=udp", "turns:203.0.113.9", "turn:[::1]"]
    assert [url_host(url) for url in urls] == ["turn.example.com", "34.118.11.7", "203.0.113.9", "::1"]
    assert unreachable_urls(urls, ["34.118.10.0/24"]) == ["turn:[::1]"]
