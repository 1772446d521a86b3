"""In the `pods` mode the admission policy holds a bot pod's env to the names the dispatcher writes and the values
the stack derives (stacks/k8s/bot_env_allow.py): a leaked dispatcher token cannot add a proxy, a CA bundle or an
SDK's base URL that would carry the bots' keys elsewhere. Judged by the policy's own CEL
(tests/infra/k8s/admission_cel.py) on the pods the dispatcher of that `up` creates (tests/infra/k8s/made_pods.py),
in every option it has."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.helpers import component_outputs
from tests.infra.k8s.admission_cel import refusal
from tests.infra.k8s.test_bot_pods_policy import (
    DISPATCHER,
    IRSA,
    POLICY,
    container,
    created,
    dispatchers_pods,
    irsa_mutated,
    policy_of,
    up,
)
from tests.infra.k8s.test_model_service import model_program, named

ALLOWED = "a bot pod's env holds only the variables the dispatcher writes"
EVIL = "https://evil.example"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"
LAST = {"botNamespace": "voicefleet-bots", "dispatcherNamespace": "voicefleet"}  # a last `up`'s outputs
OPTIONS: dict[str, dict[str, str]] = {
    "the stack's channel certificate": {},
    "a mesh's mTLS (no CA)": {"k8sChannelTls": "cilium"},
    "a Twilio region, JSON logs and traces": {"twilioRegion": "ie1", "twilioEdge": "dublin",
                                               "otelExporterOtlpEndpoint": "https://otlp.example.com"},
    "a runtime class": {"k8sRuntimeClass": "gvisor"},
}


def env_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = container(pod)["env"]
    return env


def added(name: str, value: str = EVIL) -> Callable[[dict[str, Any]], None]:
    return lambda pod: env_of(pod).append({"name": name, "value": value})


def changed(name: str, value: str = EVIL) -> Callable[[dict[str, Any]], None]:
    """The pod's `name` set to `value` (it must carry it)."""
    def change(pod: dict[str, Any]) -> None:
        (entry,) = [entry for entry in env_of(pod) if entry["name"] == name]
        entry["value"] = value
    return change


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    # The proxy reads every HTTPS call, the keys' included, once the bot trusts its CA (a PEM in another variable).
    "an HTTPS proxy": added("HTTPS_PROXY"),
    "an HTTP proxy": added("HTTP_PROXY"),
    "a lower-case proxy": added("https_proxy"),
    "a CA bundle from the environment": added("REQUESTS_CA_BUNDLE", "/proc/self/environ"),
    "an OpenSSL CA file": added("SSL_CERT_FILE", "/proc/self/environ"),
    "a PEM in a variable of its own": added("EVIL_CA", PEM),
    "an SDK's base URL": added("OPENAI_BASE_URL"),
    "a Python path": added("PYTHONPATH", "/tmp"),
    "a loader's preload": added("LD_PRELOAD", "/tmp/x.so"),
    "the channel elsewhere": changed("BOT_CHANNEL_URL"),
    "the channel's CA from the environment": changed("BOT_CHANNEL_CA_FILE", "/proc/self/environ"),
    "another identity": changed("BOT_IDENTITY", "gce"),
    "another image's digest": changed("BOT_IMAGE_DIGEST", "registry.example.com/bot@sha256:" + "e" * 64),
    "JSON logs turned off": changed("LOG_FORMAT", "text"),
    "a model service of its own": added("MODEL_SERVICE_URL"),
    "a Twilio region of its own": added("TWILIO_REGION", "au1"),
    # With a channel a session's room, token and body come over it: never in a pod.
    "a room in the pod": added("DAILY_ROOM_URL"),
    "a body in the pod": added("VOICEFLEET_BODY", json.dumps({"x": 1})),
    # A fieldRef to an annotation is a value of the pod maker's choosing; a resource's is no launch value either.
    "a launch value from an annotation": lambda pod: env_of(pod).append(
        {"name": "BOT_TRANSPORT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['x']"}}}),
    "a launch value from a resource": lambda pod: env_of(pod).append(
        {"name": "MAX_SESSION_SECONDS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}),
    "a newline in a launch value": added("BOT_TRANSPORT", "daily\nHTTPS_PROXY=https://evil.example"),
    "a carriage return in a launch value": added("BOT_TRANSPORT", "daily\rx"),
    "EKS's role without one configured": added("AWS_ROLE_ARN", "arn:aws:iam::999999999999:role/x"),
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_the_dispatchers_pods_are_admitted_in_every_option(option: str) -> None:
    run = up(None, **OPTIONS[option])
    for pod in dispatchers_pods(run):
        assert refusal(policy_of(run), created(DISPATCHER, pod)) is None, option


def test_the_dispatchers_pods_told_the_model_service_are_admitted() -> None:
    run = model_program()
    policy = named(run, POLICY, "voicefleet-k8s-test-bots-made-by-the-dispatcher")["spec"]
    for pod in dispatchers_pods(run):
        assert any(entry["name"] == "MODEL_SERVICE_URL" for entry in env_of(pod))
        assert refusal(policy, created(DISPATCHER, pod)) is None
        changed("MODEL_SERVICE_URL")(pod)
        assert ALLOWED in str(refusal(policy, created(DISPATCHER, pod)))


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_variable_the_dispatcher_does_not_write_is_refused(mutation: str) -> None:
    run = up()
    for pod in dispatchers_pods(run):
        MUTATIONS[mutation](pod)
        assert ALLOWED in str(refusal(policy_of(run), created(DISPATCHER, pod))), mutation


def test_the_refusal_names_what_is_admitted() -> None:
    run = up(twilioRegion="ie1", twilioEdge="dublin")
    (session, _) = dispatchers_pods(run)
    added("HTTPS_PROXY")(session)
    message = str(refusal(policy_of(run), created(DISPATCHER, session)))
    assert "BOT_CHANNEL_URL: wss://" in message and "TWILIO_REGION: ie1" in message
    assert "VOICEFLEET_SESSION_ID" in message and "VOICEFLEET_BODY" not in message


@pytest.mark.parametrize(("name", "value"), [("AWS_REGION", "evil.example/x"), ("AWS_DEFAULT_REGION", "eu-west-1#"),
                                             ("AWS_ROLE_ARN", "arn:aws:iam::999999999999:role/x"),
                                             ("AWS_WEB_IDENTITY_TOKEN_FILE", "/proc/self/environ"),
                                             ("AWS_STS_REGIONAL_ENDPOINTS", "https://evil.example")])
def test_eks_webhooks_variables_are_admitted_only_as_it_writes_them(name: str, value: str) -> None:
    run = up(botPermissions=IRSA)
    for pod in dispatchers_pods(run):
        mutated = irsa_mutated(pod)
        assert refusal(policy_of(run), created(DISPATCHER, mutated)) is None
        changed(name, value)(mutated)
        assert ALLOWED in str(refusal(policy_of(run), created(DISPATCHER, mutated)))


def test_the_last_ups_values_are_admitted_beside_this_ones_while_replicas_roll() -> None:
    """A pod an old replica makes after the policy's update still carries the last `up`'s region; the `up` after it
    admits it no more."""
    first = up(twilioRegion="ie1", twilioEdge="dublin")
    told = component_outputs(first, "k8s")["botPinnedEnvironment"]
    assert told["TWILIO_REGION"] == "ie1" and told["BOT_CHANNEL_URL"].startswith("wss://")
    (session, _) = dispatchers_pods(first)
    moved = up({**LAST, "botPinnedEnvironment": told}, twilioRegion="au1", twilioEdge="sydney")
    assert refusal(policy_of(moved), created(DISPATCHER, session)) is None
    assert all(refusal(policy_of(moved), created(DISPATCHER, pod)) is None for pod in dispatchers_pods(moved))
    after = up({**LAST, "botPinnedEnvironment": component_outputs(moved, "k8s")["botPinnedEnvironment"]},
               twilioRegion="au1", twilioEdge="sydney")
    assert ALLOWED in str(refusal(policy_of(after), created(DISPATCHER, session)))


def test_a_value_read_back_that_cel_cannot_hold_is_left_out() -> None:
    """An output edited by hand: left out, never written into the policy."""
    run = up({**LAST, "botPinnedEnvironment": {"MODEL_SERVICE_URL": "https://x' || true || '"}})
    (session, _) = dispatchers_pods(run)
    added("MODEL_SERVICE_URL", "https://x' || true || '")(session)
    assert ALLOWED in str(refusal(policy_of(run), created(DISPATCHER, session)))
