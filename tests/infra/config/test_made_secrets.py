"""The secrets a stack makes itself (stacks/config/made_secrets.py): drawn by pulumi-random when no key
sets them, kept as secrets, handed on by reference like a set value, never in plain text anywhere;
a set value wins; `secretsRotation` is their keepers, and `secretsRoll` keeps the other generation
of the store's message secret and password through a rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Registration, Run, is_secret, unwrap
from stacks.tools.preflight import store_rotation
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container

PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a resource type
USER = "aws:elasticache/user:User"
AWS_REPLICAS = {**CHANNEL["aws"], "dispatcherCount": "2", "botChannel": "true"}
# The secrets a user must still give (the Daily key, the dispatcher's keys): nothing the stack makes.
USERS_OWN = {k: v for k, v in SECRETS.items() if k != "voicefleet:storeMessageSecret"}


def made(run: Run) -> dict[str, Registration]:
    return {reg.name: reg for reg in run.of_type(PASSWORD)}


def value(reg: Registration) -> str:
    result = reg.outputs["result"]
    assert is_secret(result), f"{reg.name}'s result is not a secret output"
    return str(unwrap(result))


def plain_strings(found: Any) -> Iterator[str]:
    """Every string outside a secret's wrapper."""
    if is_secret(found):
        return
    if isinstance(found, dict):
        for inner in found.values():
            yield from plain_strings(inner)
    elif isinstance(found, list):
        for inner in found:
            yield from plain_strings(inner)
    elif isinstance(found, str):
        yield found


def assert_never_plain(run: Run, secret: str) -> None:
    """Not in any resource's inputs or outputs, nor in a component's or the stack's outputs, unless
    wrapped as a secret (which the engine encrypts in the state and masks in every display)."""
    places = [*(r.inputs for r in run.registrations), *(r.outputs for r in run.registrations if r.type != PASSWORD),
              *run.completed.values()]
    leaks = [text for place in places for text in plain_strings(place) if secret in text]
    assert not leaks, leaks[:1]


def user_passwords(run: Run) -> list[str]:
    """The passwords of the store's user the dispatcher signs in as (not the locked `default`)."""
    (user,) = [r for r in run.of_type(USER) if r.name.endswith("-user")]
    return list(unwrap(user.inputs["authenticationMode"])["passwords"])


def dispatcher_secrets(run: Run) -> dict[str, str]:
    return {s["name"]: s["valueFrom"] for s in container(run, "-dispatcher")["secrets"]}


def test_an_aws_stack_makes_the_channel_token_and_the_stores_secrets_and_hands_them_by_reference(
        stack: StackRunner) -> None:
    run = stack("aws", secrets=USERS_OWN, **AWS_REPLICAS)
    passwords = made(run)
    assert set(passwords) == {"bot-channel-token", "store-password-0", "store-message-secret-0"}
    for reg in passwords.values():
        # Letters and digits: ElastiCache, a redis:// URL and coturn's file take them unescaped.
        assert unwrap(reg.inputs) == {"length": 48, "special": False, "keepers": {"generation": "0"}}
        assert value(reg).isalnum() and len(value(reg)) == 48
        assert_never_plain(run, value(reg))
    refs = dispatcher_secrets(run)
    for variable, name in (("BOT_CHANNEL_TOKEN", "bot-channel-token"), ("REDIS_PASSWORD", "store-password-0"),
                           ("REDIS_MESSAGE_SECRET", "store-message-secret-0")):
        assert refs[variable].startswith("arn:aws:secretsmanager:")
        versions = run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        held = [unwrap(r.inputs["secretString"]) for r in versions if is_secret(r.inputs["secretString"])]
        assert value(passwords[name]) in held
    assert user_passwords(run) == [value(passwords["store-password-0"])]


def test_a_set_value_wins_and_nothing_is_made_for_it(stack: StackRunner) -> None:
    given = {**SECRETS, **CHANNEL_SECRETS, "voicefleet:storePassword": "SENTINEL-store-password-0123456789"}
    run = stack("aws", secrets=given, **AWS_REPLICAS)
    assert made(run) == {}
    assert user_passwords(run) == ["SENTINEL-store-password-0123456789"]


def test_raising_the_rotation_changes_the_keepers_and_so_the_value(stack: StackRunner) -> None:
    first = made(stack("gcp", botChannel="true", **CHANNEL["gcp"]))["bot-channel-token"]
    second = made(stack("gcp", botChannel="true", secretsRotation="1", **CHANNEL["gcp"]))["bot-channel-token"]
    assert unwrap(first.inputs)["keepers"] == {"generation": "0"}
    assert unwrap(second.inputs)["keepers"] == {"generation": "1"}
    assert value(first) != value(second)


def test_a_roll_keeps_the_other_message_secret_and_password_through_three_ups(stack: StackRunner) -> None:
    """Each `up` of the rotation understands the one before it: step 1 accepts what step 2 seals with,
    step 2 still accepts what step 1 sealed with and keeps its password valid; step 3 drops them."""
    steps = [stack("aws", secrets=USERS_OWN, **AWS_REPLICAS, **config)
             for config in ({"secretsRoll": "next"}, {"secretsRotation": "1", "secretsRoll": "previous"},
                            {"secretsRotation": "1"})]
    before = made(stack("aws", secrets=USERS_OWN, **AWS_REPLICAS))
    accept, seal, done = (made(run) for run in steps)
    assert set(accept) == {"bot-channel-token", "store-password-0", "store-message-secret-0", "store-message-secret-1"}
    assert value(accept["store-message-secret-0"]) == value(before["store-message-secret-0"])
    assert set(seal) == {"bot-channel-token", "store-password-0", "store-password-1", "store-message-secret-0",
                         "store-message-secret-1"}
    assert value(seal["store-message-secret-1"]) == value(accept["store-message-secret-1"])
    assert set(done) == {"bot-channel-token", "store-password-1", "store-message-secret-1"}
    for run in steps[:2]:
        assert "REDIS_ACCEPTED_MESSAGE_SECRET" in dispatcher_secrets(run)
    assert "REDIS_ACCEPTED_MESSAGE_SECRET" not in dispatcher_secrets(steps[2])
    # The plan's notes for a set key's rotation name keys no one set here: the program's warning speaks instead.
    assert [store_rotation.notes(run.registrations, "aws-test") for run in steps] == [[], [], []]
    assert sorted(user_passwords(steps[1])) == sorted(
        [value(seal["store-password-1"]), value(seal["store-password-0"])])
    accepted = [r for r in steps[1].of_type("aws:secretsmanager/secretVersion:SecretVersion")
                if r.name.endswith("redis-accepted-message-secret")]
    assert [unwrap(r.inputs["secretString"]) for r in accepted] == [value(seal["store-message-secret-0"])]


@pytest.mark.parametrize(("config", "secrets", "problem"), [
    ({"secretsRoll": "previous"}, USERS_OWN, "voicefleet:secretsRoll is previous, but secretsRotation is 0"),
    ({}, {**USERS_OWN, "voicefleet:storeAcceptedMessageSecret": "SENTINEL-accepted-message-secret-0123456789"},
     "voicefleet:storeAcceptedMessageSecret is set but storeMessageSecret is not"),
])  # fmt: skip
def test_a_roll_that_cannot_be_is_refused(stack: StackRunner, config: dict[str, str], secrets: dict[str, str],
                                          problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        stack("aws", secrets=secrets, **AWS_REPLICAS, **config)


def test_gcp_and_azure_stores_get_a_made_message_secret_and_no_password(stack: StackRunner) -> None:
    gcp = stack("gcp", secrets=USERS_OWN, botChannel="true", dispatcherMinInstances="2", dispatcherMaxInstances="3")
    assert set(made(gcp)) == {"bot-channel-token", "store-message-secret-0"}
    azure = stack("azure", secrets=USERS_OWN, dispatcherMaxReplicas="2")
    assert set(made(azure)) == {"store-message-secret-0"}
    for run in (gcp, azure):
        for reg in made(run).values():
            assert_never_plain(run, value(reg))


def test_a_managed_relay_gets_a_made_secret_and_an_external_one_still_needs_yours(stack: StackRunner) -> None:
    run = stack("gcp", turn="managed", botChannel="true", **CHANNEL["gcp"])
    secret = made(run)["turn-shared-secret"]
    assert unwrap(secret.inputs) == {"length": 48, "special": False, "keepers": {"generation": "0"}}
    assert_never_plain(run, value(secret))
    with pytest.raises(SettingsError, match="voicefleet:turnSharedSecret is required"):
        stack("gcp", turn="external", turnUrls="turn:turn.example.com:3478", botChannel="true", **CHANNEL["gcp"])


def test_the_k8s_in_cluster_store_gets_a_made_password(stack: StackRunner) -> None:
    from tests.infra.conftest import K8S_SECRETS

    secrets = {**USERS_OWN, **{k: v for k, v in K8S_SECRETS.items() if k != "voicefleet:k8sStoreUrl"}}
    run = stack("k8s", secrets=secrets, k8sStore="in-cluster", botChannel="true")
    passwords = made(run)
    assert set(passwords) == {"bot-channel-token", "store-password-0", "store-message-secret-0"}
    for reg in passwords.values():
        assert_never_plain(run, value(reg))
    as_text = json.dumps([unwrap(r.inputs) for r in run.of_type("kubernetes:core/v1:Secret")])
    assert value(passwords["store-password-0"]) in as_text  # in a Secret's data, which stays wrapped


def test_profile_prod_turns_the_channel_and_so_the_reserve_on(stack: StackRunner) -> None:
    from tests.infra.config.test_dashboard import plain_environment

    prod = stack("gcp", secrets=USERS_OWN, profile="prod", **CHANNEL["gcp"])
    assert "BOT_CHANNEL_URL" in plain_environment("gcp", prod) and "bot-channel-token" in made(prod)
    dev = stack("gcp", secrets=USERS_OWN, **CHANNEL["gcp"])
    assert "BOT_CHANNEL_URL" not in plain_environment("gcp", dev) and made(dev) == {}
    off = stack("gcp", secrets=USERS_OWN, profile="prod", botChannel="false", **CHANNEL["gcp"])
    assert "BOT_CHANNEL_URL" not in plain_environment("gcp", off)
