"""Secrets a stack makes itself, kept in its state: what no one outside the stack needs to know.

The bot channel's token (`botChannelToken`, with the channel on), the coordination store's password
(`storePassword`, a store that signs in with one) and the replicas' message key (`storeMessageSecret`,
any store), and the TURN relay's shared secret (`turnSharedSecret`): left unset, each is drawn by
pulumi-random's RandomPassword. Its `result` is a secret output (the provider marks it so), so the
value is encrypted in the stack's state and reaches the secret stores and the dispatcher by
reference, as a set value does; `pulumi config set --secret` still wins.

Letters and digits only (`special=False`), 48 of them (about 285 bits): every consumer takes them as
they are, with no escaping. ElastiCache's password rule refuses space, `"`, `/` and `@`; a redis://
URL's userinfo breaks on `@`, `:`, `/`, `#`, `%` and `?`; coturn's `static-auth-secret` line would end
at `#`; the dispatcher wants at least 32 characters of each.

Rotation: `secretsRotation` (a whole number) is each made secret's generation, its `keepers`.
Raising it draws new ones at the next `up`. The store's message secret and password have a
resource per generation, so a roll can keep the one it replaces: `secretsRoll: next` accepts the
next generation's message secret (nothing seals with it yet), `secretsRoll: previous` keeps the
previous generation's message secret accepted and its password valid beside the new ones. A rotation
of a stack with a store is three `up`s (docs/pulumi.md, "Rotating the secrets the stack makes"); an `up`
that skips or repeats one is refused against the step the last `up` exported (stacks/config/rotation_last_up.py),
and every made secret waits for that check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from stacks.config import rotation_last_up
from stacks.config.reader import Reader

ROTATION_KEY, ROLL_KEY = rotation_last_up.ROTATION_KEY, rotation_last_up.ROLL_KEY
ROLLS = ("none", "next", "previous")
LENGTH = 48  # letters and digits: about 5.95 bits each
CHANNEL_TOKEN = "bot-channel-token"  # noqa: S105 - a resource's name, not a secret
TURN_SECRET = "turn-shared-secret"  # noqa: S105 - a resource's name, not a secret
MESSAGE_SECRET = "store-message-secret"  # noqa: S105 - a resource's name, not a secret
STORE_PASSWORD = "store-password"  # noqa: S105 - a resource's name, not a secret


@dataclass(frozen=True)
class Rotation:
    """Where the made secrets stand: their generation, and which neighbour a roll keeps."""

    generation: int
    roll: str  # none | next | previous
    # The last `up`'s step allows this one (stacks/config/rotation_last_up.py); None: not checked (a test's own).
    ready: pulumi.Output[object] | None = field(default=None, compare=False)

    @property
    def other(self) -> int | None:
        """The generation a roll keeps beside the current one (None: no roll)."""
        return {"next": self.generation + 1, "previous": self.generation - 1}.get(self.roll)

    def output(self, rolls: bool) -> dict[str, Any]:
        """What the next `up` reads back; `rolls`: this one made a store's message secret or password."""
        return rotation_last_up.output(rotation_last_up.Step(self.generation, self.roll), rolls)


def rotation(cfg: Reader) -> Rotation:
    generation, roll = cfg.integer(ROTATION_KEY, minimum=0), cfg.string(ROLL_KEY, choices=ROLLS)
    found = Rotation(generation, roll, ready=rotation_last_up.checked(rotation_last_up.Step(generation, roll)))
    if found.roll == "previous" and found.generation == 0:
        raise cfg.fail(ROLL_KEY, f"is previous, but {ROTATION_KEY} is 0: there is no earlier generation. A rotation "
                                 f"first sets {ROLL_KEY} next, then raises {ROTATION_KEY} with {ROLL_KEY} previous "
                                 "(docs/pulumi.md, \"Rotating the secrets the stack makes\")")
    if found.roll != "none":  # said by the program itself, so a plain `pulumi up` shows it too
        pulumi.log.warn(_roll_step(found))
    return found


def _roll_step(found: Rotation) -> str:
    if found.roll == "next":
        return (f"{ROLL_KEY} is next: the replicas also open messages sealed with the next message secret. Once "
                f"no replica of the earlier deploy runs: pulumi config set {ROTATION_KEY} {found.generation + 1} "
                f"&& pulumi config set {ROLL_KEY} previous && pulumi up")
    return (f"{ROLL_KEY} is previous: the replicas still open messages sealed with generation {found.generation - 1} "
            "and the store still takes its password. Once no replica of the earlier deploy runs and the outbox's "
            f"longest wait has passed: pulumi config rm {ROLL_KEY} && pulumi up")


def made(name: str, generation: int, ready: pulumi.Output[object] | None = None) -> pulumi.Output[str]:
    """A new secret of `generation`: 48 letters and digits, a secret output kept in the stack's state.
    Registered once `ready` is (the rotation's check): a refused step draws and replaces nothing."""
    # Imported here: `voicefleet config check` reads this module's neighbours on every run, and a kept
    # answer (stacks/tools/config_cache.py) never makes a secret.
    import pulumi_random

    password = pulumi_random.RandomPassword(name, length=LENGTH, special=False,
                                            keepers={"generation": _when(ready, str(generation))})
    return password.result


def _when(ready: pulumi.Output[object] | None, value: str) -> pulumi.Input[str]:
    return value if ready is None else ready.apply(lambda _: value)


def channel_token(found: Rotation) -> pulumi.Output[str]:
    """The channel's token: replaced when the generation rises (bots dial again on a dispatcher deploy)."""
    return made(CHANNEL_TOKEN, found.generation, found.ready)


def turn_secret(found: Rotation) -> pulumi.Output[str]:
    """The relay's shared secret: replaced when the generation rises (credentials given before end)."""
    return made(TURN_SECRET, found.generation, found.ready)


def _of_generation(name: str, generation: int, found: Rotation) -> pulumi.Output[str]:
    return made(f"{name}-{generation}", generation, found.ready)


def message_secrets(found: Rotation) -> tuple[pulumi.Output[str], pulumi.Output[str] | None]:
    """The message secret the replicas seal with, and during a roll the other one they open with."""
    other = found.other
    return (_of_generation(MESSAGE_SECRET, found.generation, found),
            None if other is None else _of_generation(MESSAGE_SECRET, other, found))


def store_passwords(found: Rotation) -> tuple[pulumi.Output[str], pulumi.Output[str] | None]:
    """The store's password, and while `previous` rolls, the one it replaces (still valid)."""
    return (_of_generation(STORE_PASSWORD, found.generation, found),
            _of_generation(STORE_PASSWORD, found.generation - 1, found) if found.roll == "previous" else None)
