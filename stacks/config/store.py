"""The coordination store per stack: when a stack gets one, and its secret.

More than one dispatcher replica (`dispatcherCount` > 1 on AWS) means a coordination store
(docs/replicas.md): the replicas share it, so any of them answers any request, bots' channels may
land on any replica behind the load balancer, and a keyed start launches once. On AWS the store is
ElastiCache Serverless for Valkey (stacks/aws/store.py) with an RBAC user whose password the stack
makes and keeps in its state (stacks/config/made_secrets.py), unless `storePassword` sets one. One
replica: no store, as before.

Rotating the password without locking out the tasks still running: `storePreviousPassword` keeps
the old one valid beside the new (ElastiCache holds two per user) through the deploy that rolls the
tasks over, and goes once they are gone (docs/pulumi.md). The store's ECPU ceiling follows the
sessions the stack admits (`storeEcpuPerSecond`, stacks/config/store_capacity.py).

Every stack with a store also has a message secret, made the same way unless `storeMessageSecret`
sets one: the key the replicas sign their messages to each other with (`REDIS_MESSAGE_SECRET`,
dispatcher/store/message_seal.py), so that the store's credential alone cannot speak for a replica.
It reaches the dispatcher from the secret store, next to the password; no bot is given it.

Changing it without splitting the replicas during a rollout: a second key the replicas open with
but never seal with (`REDIS_ACCEPTED_MESSAGE_SECRET`), through three `up`s: `storeAcceptedMessageSecret`
for a set secret (docs/pulumi.md, "Changing the replicas' message secret"), `secretsRoll` for the
stack's own; the program warns while either is set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pulumi

from stacks.config import made_secrets, store_capacity
from stacks.config.limits import ELASTICACHE_PASSWORD, valid_store_password
from stacks.config.reader import Reader

if TYPE_CHECKING:
    from stacks.config.model import Secrets, Settings

PASSWORD_KEY = "storePassword"  # noqa: S105 - a config key, not a secret
PREVIOUS_PASSWORD_KEY = "storePreviousPassword"  # noqa: S105 - a config key, not a secret
ECPU_KEY = "storeEcpuPerSecond"
MESSAGE_SECRET_KEY = "storeMessageSecret"  # noqa: S105 - a config key, not a secret
ACCEPTED_MESSAGE_SECRET_KEY = "storeAcceptedMessageSecret"  # noqa: S105 - a config key, not a secret
PASSWORD_VARIABLE = "REDIS_PASSWORD"  # noqa: S105 - the dispatcher's variable, not a secret
MESSAGE_SECRET_VARIABLE = "REDIS_MESSAGE_SECRET"  # noqa: S105 - the dispatcher's variable, not a secret
ACCEPTED_MESSAGE_SECRET_VARIABLE = "REDIS_ACCEPTED_MESSAGE_SECRET"  # noqa: S105 - the dispatcher's variable
URL_VARIABLE = "REDIS_URL"
STORE_SECRETS: tuple[str, ...] = (PASSWORD_VARIABLE,)
MESSAGE_SECRETS: tuple[str, ...] = (MESSAGE_SECRET_VARIABLE,)
MIN_MESSAGE_SECRET_CHARS = 32  # the dispatcher refuses a shorter one at start-up


def password(cfg: Reader) -> pulumi.Output[str] | None:
    return cfg.secret(PASSWORD_KEY, required=False, check=lambda text: _check(cfg, PASSWORD_KEY, text))


def previous_password(cfg: Reader) -> pulumi.Output[str] | None:
    """The password a rotation replaces, valid beside the new one until it is unset again."""
    previous = cfg.secret(PREVIOUS_PASSWORD_KEY, required=False,
                          check=lambda text: _check(cfg, PREVIOUS_PASSWORD_KEY, text))
    current = cfg.config.get_secret(PASSWORD_KEY) if previous is not None else None  # checked by `password`
    if previous is not None and current is not None:
        pulumi.Output.all(current, previous).apply(lambda both: _differ(cfg, both[0], both[1]))
    if previous is not None:  # said by the program itself, so a plain `pulumi up` shows it too
        pulumi.log.warn(f"{PREVIOUS_PASSWORD_KEY} is set: the store user accepts the old password beside the new "
                        f"one until it is removed. Once every task runs with the new one: pulumi config rm "
                        f"{PREVIOUS_PASSWORD_KEY} && pulumi up")
    return previous


def message_secret(cfg: Reader) -> pulumi.Output[str] | None:
    return cfg.secret(MESSAGE_SECRET_KEY, required=False,
                      check=lambda text: _check_message_secret(cfg, MESSAGE_SECRET_KEY, text))


def accepted_message_secret(cfg: Reader) -> pulumi.Output[str] | None:
    """During a change of `storeMessageSecret`, the other secret: opened by the replicas, never sealed with."""
    accepted = cfg.secret(ACCEPTED_MESSAGE_SECRET_KEY, required=False,
                          check=lambda text: _check_message_secret(cfg, ACCEPTED_MESSAGE_SECRET_KEY, text))
    current = cfg.config.get_secret(MESSAGE_SECRET_KEY) if accepted is not None else None
    if accepted is not None and current is not None:
        pulumi.Output.all(current, accepted).apply(lambda both: _secrets_differ(cfg, both[0], both[1]))
    if accepted is not None:  # said by the program itself, so a plain `pulumi up` shows it too
        pulumi.log.warn(f"{ACCEPTED_MESSAGE_SECRET_KEY} is set: the replicas also open messages and outbox entries "
                        "sealed with it. A change of the message secret is under way (docs/pulumi.md); once "
                        "its last step has rolled out: pulumi config rm "
                        f"{ACCEPTED_MESSAGE_SECRET_KEY} && pulumi up")
    return accepted


def _check_message_secret(cfg: Reader, key: str, text: str) -> None:
    if len(text) < MIN_MESSAGE_SECRET_CHARS:
        raise cfg.fail(key, f"must be at least {MIN_MESSAGE_SECRET_CHARS} characters; generate one "
                            "with python -c 'import secrets; print(secrets.token_urlsafe(32))'")


def _secrets_differ(cfg: Reader, current: str, accepted: str) -> None:
    if current.strip() == accepted.strip():
        raise cfg.fail(ACCEPTED_MESSAGE_SECRET_KEY, f"is the same as {MESSAGE_SECRET_KEY}: it holds the other "
                                                    "secret of a change (docs/pulumi.md)")


def with_made(cfg: Reader, secrets: Secrets, rotation: made_secrets.Rotation, *, store: bool,
              password: bool) -> Secrets:
    """A store's secrets that no key sets, made by the stack: the replicas' message secret (any store)
    and the store's password (`password`: a store that signs in with one), each with the neighbour a
    roll keeps. A set secret's own rotation key (`storeAcceptedMessageSecret`, `storePreviousPassword`)
    names the value it replaces, which a made secret's owner never saw: refused beside a made one."""
    if not store:
        return secrets
    if secrets.store_message_secret is None:
        _no_rotation_key(cfg, secrets.store_accepted_message_secret, ACCEPTED_MESSAGE_SECRET_KEY, MESSAGE_SECRET_KEY)
        sealing, opening = made_secrets.message_secrets(rotation)
        secrets = replace(secrets, store_message_secret=sealing, store_accepted_message_secret=opening)
    if password and secrets.store_password is None:
        _no_rotation_key(cfg, secrets.store_previous_password, PREVIOUS_PASSWORD_KEY, PASSWORD_KEY)
        current, previous = made_secrets.store_passwords(rotation)
        secrets = replace(secrets, store_password=current, store_previous_password=previous)
    return secrets


def _no_rotation_key(cfg: Reader, value: pulumi.Output[str] | None, key: str, made_key: str) -> None:
    if value is not None:
        raise cfg.fail(key, f"is set but {made_key} is not: the stack makes that secret, and rotates it with "
                            f"{made_secrets.ROTATION_KEY} and {made_secrets.ROLL_KEY} (docs/pulumi.md, \"Rotating the "
                            f"secrets the stack makes\"); pulumi config rm {key}")


def _check(cfg: Reader, key: str, text: str) -> None:
    # Checked when the value is known (it is an Output): ElastiCache would refuse it at `up`.
    if not valid_store_password(text):
        low, high = ELASTICACHE_PASSWORD
        raise cfg.fail(key, f"must be {low}-{high} printable characters without spaces, "
                            "'\"', '/' or '@' (ElastiCache's rule); generate one with "
                            "python -c 'import secrets; print(secrets.token_urlsafe(32))'")


def _differ(cfg: Reader, current: str, previous: str) -> None:
    if current == previous:
        raise cfg.fail(PREVIOUS_PASSWORD_KEY, f"is the same as {PASSWORD_KEY}: set {PASSWORD_KEY} to the new "
                                              "password and this key to the one it replaces (docs/pulumi.md)")


def ecpu_per_second(cfg: Reader, sessions: int) -> int:
    """The store's ECPU ceiling: `storeEcpuPerSecond`, or (0) sized for `sessions` relayed calls;
    refused below that, where relayed phone calls would be throttled before the stack is full."""
    needed = store_capacity.needed(sessions)
    value = cfg.integer(ECPU_KEY, minimum=0, maximum=store_capacity.MAX_ECPU)
    if value == 0:
        return needed
    if value < needed:
        calls = store_capacity.relayed_calls(value)
        raise cfg.fail(ECPU_KEY, f"must be at least {needed} for maxConcurrentSessions={sessions} phone calls "
                                 f"relayed through the store ({store_capacity.BASE_ECPU} + "
                                 f"{store_capacity.ECPU_PER_RELAYED_CALL} per session; docs/replicas.md), or 0 to "
                                 f"size it so (got {value}: room for {calls})")
    return value


def require_for_replicas(cfg: Reader, settings: Settings, key: str, replicas: int) -> bool:
    """True when the stack needs a store (more than one replica); its secrets are made if unset (`with_made`)."""
    if replicas <= 1:
        if settings.secrets.store_accepted_message_secret is not None:
            raise cfg.fail(ACCEPTED_MESSAGE_SECRET_KEY, f"is set but {key}={replicas} has no coordination store: "
                                                        f"pulumi config rm {ACCEPTED_MESSAGE_SECRET_KEY}")
        if settings.secrets.store_previous_password is not None:
            raise cfg.fail(PREVIOUS_PASSWORD_KEY, f"is set but {key}={replicas} has no coordination store: "
                                                  f"pulumi config rm {PREVIOUS_PASSWORD_KEY}")
        return False
    return True


def store_secrets(settings: Settings, *, store: bool, password: bool) -> dict[str, pulumi.Output[str]]:
    """The store's password (`password`: an AWS store, which signs in with one) and, with any store,
    the replicas' message key."""
    token, key = settings.secrets.store_password, settings.secrets.store_message_secret
    accepted = settings.secrets.store_accepted_message_secret
    return {**({PASSWORD_VARIABLE: token} if store and password and token is not None else {}),
            **({MESSAGE_SECRET_VARIABLE: key} if store and key is not None else {}),
            **({ACCEPTED_MESSAGE_SECRET_VARIABLE: accepted} if store and accepted is not None else {})}
