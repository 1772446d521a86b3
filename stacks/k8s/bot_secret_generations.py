"""The bots' keys' Secret of this `up`, and the ones it replaced, kept until their replicas have drained.

Pulumi deletes a replaced resource at the end of its `up`, so one resource cannot keep its old object: a
slot each, `<stack>-bot-keys` (the resource older stacks kept their Secret under), `-b` and `-c`. A new
Secret takes a slot no kept one is in; a kept one is declared again with its values and name ignored, so
it has no diff, until the time the `up` that replaced it wrote (its `until`: the rollout's wait, in which
each replica naming it drains, counted from the end of this `up`'s rollout with the longer of the last
and this `up`'s drain); the first `up` after that deletes it. A change while all three are kept is refused.
What the last `up` wrote and kept comes back through the StackReference to the stack itself
(stacks/k8s/last_outputs.py). Why, and the provider's source it relies on: docs/kubernetes.md, "The old
Secret stays until its replicas have drained".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pulumi
from pulumi.output import contains_unknowns

from stacks.config.model import Settings
from stacks.config.reader import SettingsError
from stacks.config.refused import reported_once
from stacks.k8s.bot_secret import DIGEST_CHARACTERS, BotSecret, bot_keys
from stacks.k8s.dispatcher import rollout_seconds
from stacks.k8s.last_outputs import Kept, LastUp
from stacks.shared.release_builds import up_time

# Three: a second change within the first's keep still keeps both earlier Secrets. A third such change is
# refused until the oldest's time has passed: its replicas may still be draining.
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
    if not free:
        oldest = min(still, key=lambda k: k.until)
        if now.known:
            raise full(still, oldest)
        # A preview that cannot know the name shows the oldest's slot taken; the `up` knows it and refuses.
        still.remove(oldest)
        free = [oldest.slot]
    return Placement(free[0], tuple(still))


def full(kept: list[Kept], oldest: Kept) -> SettingsError:
    """A fourth Secret while the three slots hold ones still named by draining replicas."""
    held = ", ".join(f"{k.name} until {k.until:%Y-%m-%d %H:%M:%S} UTC" for k in sorted(kept, key=lambda k: k.until))
    return SettingsError(
        "Invalid stack configuration: botSecrets changed while the bots' keys' three Secrets are each kept for "
        f"replicas still draining ({held}): a new one would delete {oldest.name} under them. Run this `up` after "
        f"{oldest.until:%Y-%m-%d %H:%M:%S} UTC, when the oldest frees its slot, or set botSecrets back to the keys "
        "of the last `up`; for keys that must change now (a leaked one), make a Secret with the new keys yourself, "
        "`pulumi config set k8sBotSecret <its name>` and `pulumi config rm botSecrets`: the kept ones stay their time "
        "(docs/kubernetes.md, \"The old Secret stays until its replicas have drained\")")


def keep_seconds(max_session_seconds: int) -> int:
    """How long a replica of a dispatcher with this maxSessionSeconds drains once its rollout has sent it
    SIGTERM (its termination grace), with the rollout's margin (stacks/k8s/dispatcher.py `rollout_seconds`)."""
    return rollout_seconds(max_session_seconds)


def replaced_keep(last: LastUp, max_session_seconds: int) -> int:
    """The keep of the Secret this `up` replaces: its replicas are the last `up`'s and drain with that `up`'s
    grace, which a lowered maxSessionSeconds does not shorten. A last `up` that predates that output recorded its
    bot pods' lifetime, never shorter than its sessions: kept as if that were its maxSessionSeconds."""
    grace = last.keys_grace
    if grace is None and last.bot_lifetime is not None:
        grace = keep_seconds(last.bot_lifetime)
    return max(grace or 0, keep_seconds(max_session_seconds))


def retimed(place: Placement, last: LastUp, finished: datetime, keep: int) -> list[dict[str, str]]:
    """The kept Secrets as the next `up` reads them: the one this `up` replaced is kept `keep` seconds from
    `finished`, when the dispatcher's rollout ended (a replica it replaced may get SIGTERM only then)."""
    return [(kept if kept in last.keys_kept else Kept(kept.name, kept.slot, finished + timedelta(seconds=keep)))
            .as_output() for kept in place.kept]


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

        at = up_time()
        self.recorded = recorded
        self.max_session_seconds = settings.max_session_seconds
        # Recorded for the next `up`: how long this `up`'s replicas drain when it replaces them.
        self.grace = keep_seconds(settings.max_session_seconds)

        def place(found: list[Any]) -> Placement:
            last, current = found
            was, slot = last_written(last, settings.prefix)
            try:
                return placement(was, slot, current, same_namespace=last.bot_namespace in (None, cfg.bot_namespace),
                                 kept=last.keys_kept, at=at, keep_seconds=replaced_keep(last, self.max_session_seconds))
            except SettingsError as refused:
                reported_once(refused)
                raise

        # Known without waiting on any resource: the pods' admission policy names the kept ones before they exist.
        self.plan: pulumi.Output[Placement] = pulumi.Output.all(recorded, now).apply(place)

        def declare(place: Placement) -> pulumi.Output[Placement]:
            made = [BotSecret(slot_name(name, kept.slot), kept.name, namespace, None, labels, opts)
                    for kept in place.kept]
            if place.current is not None:
                assert written is not None
                made.append(BotSecret(slot_name(name, place.current), written, namespace, bot_keys(settings),
                                      labels, opts))
            if not made:
                return pulumi.Output.from_input(place)
            # A resource's URN is known once it is registered, at a preview too, and carries the resource.
            return pulumi.Output.all(*(secret.secret.urn for secret in made)).apply(lambda _: place)

        self.placed: pulumi.Output[Placement] = self.plan.apply(declare)
        self.slot = self.placed.apply(lambda place: place.current)

    def kept_after(self, rolled_out: pulumi.Output[Any]) -> pulumi.Output[list[dict[str, str]]]:
        """The kept Secrets, read back by the next `up` (stacks/k8s/last_outputs.py): names, slots and times,
        never a value. `rolled_out` resolves when the dispatcher's rollout has ended (pulumi-kubernetes
        returns from a Deployment's update then), and this `up`'s clock is read again at that moment."""
        return pulumi.Output.all(self.placed, self.recorded, rolled_out).apply(
            lambda found: retimed(found[0], found[1], up_time(), replaced_keep(found[1], self.max_session_seconds)))

    def after(self, value: pulumi.Output[T]) -> pulumi.Output[T]:
        """`value`, as a value that depends on the Secrets: what names them comes after them, and a destroy
        deletes it first."""
        return pulumi.Output.all(value, self.placed).apply(lambda found: found[0])
