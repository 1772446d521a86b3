"""The bots' keys' Secret of this `up`, and the last `up`'s kept one `up` longer: two slots, taken in turn.

Pulumi deletes a replaced resource at the end of its `up`, so one resource cannot keep its old object:
`<stack>-bot-keys` (the resource older stacks kept their Secret under) and `<stack>-bot-keys-b`. A new
Secret takes the slot the last `up`'s is not in; the last `up`'s is declared again with its values and
name ignored, so it has no diff, and the `up` after deletes it. What the last `up` wrote comes back
through the StackReference to the stack itself (stacks/k8s/last_outputs.py). Why, and the engine's and
provider's source it relies on: docs/kubernetes.md, "The old Secret stays until the next `up`".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
from pulumi.output import contains_unknowns

from stacks.config.model import Settings
from stacks.k8s.bot_secret import DIGEST_CHARACTERS, BotSecret
from stacks.k8s.last_outputs import LastUp

SLOTS = ("a", "b")
T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """Where this `up` declares the bots' keys' Secrets."""

    current: str | None  # the slot of this `up`'s Secret (None: it writes none)
    kept: str | None = None  # the slot of the last `up`'s, kept one `up` longer (None: nothing kept)
    kept_name: str | None = None


@dataclass(frozen=True)
class Now:
    """This `up`'s Secret's name: None when it writes none; `known` False at a preview that cannot know it."""

    name: str | None
    known: bool = True


def slot_name(name: str, slot: str) -> str:
    return f"{name}-bot-keys" if slot == SLOTS[0] else f"{name}-bot-keys-{slot}"


def last_written(last: LastUp, prefix: str) -> tuple[str | None, str]:
    """The Secret the last `up` wrote from `botSecrets` and its slot. A stack whose last `up` predates these
    outputs wrote its Secret in the first slot, and in the pods mode exported its name as `botSecret`,
    the team's own Secret's otherwise: only a name of the stack's own pattern is taken as written."""
    if last.keys_secret is not None:
        return last.keys_secret, last.keys_slot if last.keys_slot in SLOTS else SLOTS[0]
    own = rf"{re.escape(prefix)}-bot-keys-[0-9a-f]{{{DIGEST_CHARACTERS}}}"
    if last.bot_secret is not None and re.fullmatch(own, last.bot_secret):
        return last.bot_secret, SLOTS[0]
    return None, SLOTS[0]


def placement(written: str | None, slot: str, now: Now, same_namespace: bool = True) -> Placement:
    """The last `up`'s Secret (`written`, in `slot`) is kept unless this one writes the same; a new one takes
    the other slot. A name unknown at a preview is taken as new. After a move of the bots' namespace (a
    drained stack: no replica names the old one) nothing is kept."""
    keep = written is not None and same_namespace and (not now.known or now.name != written)
    if not keep:
        return Placement(None if now.known and now.name is None else slot)
    current = None if now.known and now.name is None else SLOTS[1 - SLOTS.index(slot)]
    return Placement(current, slot, written)


class Generations:
    """This `up`'s Secret of the bots' keys (`written`: its name, None when the stack writes none) and the last
    `up`'s, kept; `after` makes a value depend on both."""

    def __init__(self, name: str, settings: Settings, written: pulumi.Output[str] | None,
                 recorded: pulumi.Output[LastUp], namespace: pulumi.Input[str], labels: dict[str, str],
                 opts: pulumi.ResourceOptions) -> None:
        cfg = settings.kubernetes
        assert cfg is not None
        now = (pulumi.Output.from_input(Now(None)) if written is None else written.apply(
            lambda found: Now(None, known=False) if contains_unknowns(found) else Now(str(found)),
            run_with_unknowns=True))

        def declare(found: list[Any]) -> pulumi.Output[Placement]:
            last, current = found
            was, slot = last_written(last, settings.prefix)
            place = placement(was, slot, current, last.bot_namespace in (None, cfg.bot_namespace))
            made = []
            if place.kept is not None:
                made.append(BotSecret(slot_name(name, place.kept), str(place.kept_name), namespace, None, labels,
                                      opts))
            if place.current is not None:
                assert written is not None
                made.append(BotSecret(slot_name(name, place.current), written, namespace, settings.secrets.bot,
                                      labels, opts))
            if not made:
                return pulumi.Output.from_input(place)
            # A resource's URN is known once it is registered, at a preview too, and carries the resource.
            return pulumi.Output.all(*(secret.secret.urn for secret in made)).apply(lambda _: place)

        self.placed: pulumi.Output[Placement] = pulumi.Output.all(recorded, now).apply(declare)
        self.slot = self.placed.apply(lambda place: place.current)

    def after(self, value: pulumi.Output[T]) -> pulumi.Output[T]:
        """`value`, as a value that depends on the Secrets: what names them comes after them, and a destroy
        deletes it first."""
        return pulumi.Output.all(value, self.placed).apply(lambda found: found[0])
