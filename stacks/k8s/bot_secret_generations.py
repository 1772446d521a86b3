"""The bots' keys' Secret of this `up`, and the ones it replaced, kept until their replicas have drained.

Pulumi deletes a replaced resource at the end of its `up`, so one resource cannot keep its old object: a
slot each, `<stack>-bot-keys` (the resource older stacks kept their Secret under), `-b` and `-c`. A new
Secret takes a slot no kept one is in; a kept one is declared again with its values and name ignored, so
it has no diff, until the time the `up` that replaced it wrote (its `until`: the rollout's wait, in which
each replica naming it drains); the first `up` after that deletes it. What the last `up` wrote and kept
comes back through the StackReference to the stack itself (stacks/k8s/last_outputs.py). Why, and the
engine's and provider's source it relies on: docs/kubernetes.md, "The old Secret stays until its replicas
have drained".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pulumi
from pulumi.output import contains_unknowns

from stacks.config.model import Settings
from stacks.k8s.bot_secret import DIGEST_CHARACTERS, BotSecret
from stacks.k8s.dispatcher import rollout_seconds
from stacks.k8s.last_outputs import Kept, LastUp
from stacks.shared.release_builds import up_time

# Three: a second change within the first's keep still keeps both earlier Secrets. A third such change
# gives up the oldest (its replicas have had two `up`s to drain).
SLOTS = ("a", "b", "c")
T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """Where this `up` declares the bots' keys' Secrets."""

    current: str | None  # the slot of this `up`'s Secret (None: it writes none)
    kept: tuple[Kept, ...] = ()  # the earlier ones still named by draining replicas, each in its own slot


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


def placement(written: str | None, slot: str, now: Now, *, same_namespace: bool = True, kept: tuple[Kept, ...] = (),
              at: datetime, keep_seconds: int) -> Placement:
    """The last `up`'s Secret (`written`, in `slot`) is kept until `at` + `keep_seconds` unless this one writes
    the same; earlier kept ones (`kept`) until their own time. A new one takes a slot none of them is in (one
    of them back, if it names that one). A name unknown at a preview is taken as new. After a move of the bots'
    namespace (a drained stack: no replica names the old one) nothing is kept."""
    if not same_namespace:
        return Placement(None if now.known and now.name is None else slot)
    still = [k for k in kept if k.until > at and k.name != written and k.slot != slot and k.slot in SLOTS]
    changed = written is not None and (not now.known or now.name != written)
    if changed:
        assert written is not None
        still.append(Kept(written, slot, at + timedelta(seconds=keep_seconds)))
    if now.known and now.name is None:
        return Placement(None, tuple(still))
    if not changed and written is not None:
        return Placement(slot, tuple(still))
    back = [k for k in still if now.known and k.name == now.name]
    if back:  # the keys of a kept Secret again: that one is this `up`'s, its values declared anew
        still.remove(back[0])
        return Placement(back[0].slot, tuple(still))
    taken = {k.slot for k in still}
    free = [candidate for candidate in (slot, *SLOTS) if candidate not in taken]
    if not free:  # every slot kept: the oldest gives its slot up
        oldest = min(still, key=lambda k: k.until)
        still.remove(oldest)
        free = [oldest.slot]
    return Placement(free[0], tuple(still))


def keep_seconds(max_session_seconds: int) -> int:
    """How long a replaced Secret is kept from the `up` that replaced it: that `up` waits this long for the
    dispatcher's rollout (stacks/k8s/dispatcher.py `rollout_wait`), and a replica it replaces drains within it."""
    return rollout_seconds(max_session_seconds)


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

        at, keep = up_time(), keep_seconds(settings.max_session_seconds)

        def place(found: list[Any]) -> Placement:
            last, current = found
            was, slot = last_written(last, settings.prefix)
            return placement(was, slot, current, same_namespace=last.bot_namespace in (None, cfg.bot_namespace),
                             kept=last.keys_kept, at=at, keep_seconds=keep)

        # Known without waiting on any resource: the pods' admission policy names the kept ones before they exist.
        self.plan: pulumi.Output[Placement] = pulumi.Output.all(recorded, now).apply(place)

        def declare(place: Placement) -> pulumi.Output[Placement]:
            made = [BotSecret(slot_name(name, kept.slot), kept.name, namespace, None, labels, opts)
                    for kept in place.kept]
            if place.current is not None:
                assert written is not None
                made.append(BotSecret(slot_name(name, place.current), written, namespace, settings.secrets.bot,
                                      labels, opts))
            if not made:
                return pulumi.Output.from_input(place)
            # A resource's URN is known once it is registered, at a preview too, and carries the resource.
            return pulumi.Output.all(*(secret.secret.urn for secret in made)).apply(lambda _: place)

        self.placed: pulumi.Output[Placement] = self.plan.apply(declare)
        self.slot = self.placed.apply(lambda place: place.current)
        # Read back by the next `up` (stacks/k8s/last_outputs.py): names, slots and times, never a value.
        self.kept = self.placed.apply(lambda place: [kept.as_output() for kept in place.kept])

    def after(self, value: pulumi.Output[T]) -> pulumi.Output[T]:
        """`value`, as a value that depends on the Secrets: what names them comes after them, and a destroy
        deletes it first."""
        return pulumi.Output.all(value, self.placed).apply(lambda found: found[0])
