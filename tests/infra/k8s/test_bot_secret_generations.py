"""A change of the bots' keys keeps the last `up`'s Secret until that `up`'s rollout wait has passed, whatever the
`up`s between (stacks/k8s/bot_secret_generations.py): the dispatcher's replicas it replaced name it while they
drain, and a pod one of them starts in its last seconds reads it when its container starts.

Each `up` is the program's own run after the one before it (its outputs read back through the StackReference
to itself, as `pulumi up` does), and the engine's steps for the Secrets are modelled from the state the `up`s
before left (tests/infra/k8s/secret_steps.py): a first `up`, a key change, an `up` with nothing changed, a
destroy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pulumi.output import contains_unknowns
from pulumi.runtime import rpc

from stacks.config.reader import DEFAULTS, SettingsError
from stacks.k8s.bot_secret_generations import Now, Placement, keep_seconds, placement
from stacks.k8s.last_outputs import Kept
from stacks.tools.mocks import Deployed, RecordingMocks, Registration, Run, run_program, unwrap
from tests.infra.conftest import config_for
from tests.infra.helpers import with_state
from tests.infra.k8s.admission_cel import refusal
from tests.infra.k8s.conftest import ALL_SECRETS
from tests.infra.k8s.secret_steps import SecretState, Steps
from tests.infra.k8s.test_agent_sandbox import DEPLOYER, TEMPLATE, body, dispatcher_env
from tests.infra.k8s.test_bot_pods_policy import DISPATCHER, POLICY, created, pods_of, policy_of

KEYS = {"CARTESIA_API_KEY": "SENTINEL-cartesia-key-61f0", "DEEPGRAM_API_KEY": "SENTINEL-deepgram-key-93aa"}
ROTATED = {**KEYS, "CARTESIA_API_KEY": "SENTINEL-cartesia-key-rotated"}
AGAIN = {**KEYS, "CARTESIA_API_KEY": "SENTINEL-cartesia-key-third"}
SANDBOX = {"k8sMode": "agent-sandbox", "k8sDeployer": DEPLOYER}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SLOT_A, SLOT_B = "voicefleet-k8s-test-bot-keys", "voicefleet-k8s-test-bot-keys-b"
MODES = [pytest.param({}, id="pods"), pytest.param(SANDBOX, id="agent-sandbox")]


class Stack:
    """One stack's `up`s: its last outputs (Deployed) and its Secrets' state."""

    def __init__(self) -> None:
        self.deployed, self.state = Deployed(), SecretState(("voicefleet-bots", "voicefleet-moved"))

    def up(self, keys: dict[str, str] | None, secrets: dict[str, str] = ALL_SECRETS,
           **overrides: str) -> tuple[Run, Steps]:
        secrets = {**secrets, **({"voicefleet:botSecrets": json.dumps(keys)} if keys is not None else {})}
        run = run_program(config_for("k8s", overrides, secrets), list(secrets), stack="k8s-test",
                          deployed=self.deployed)
        self.deployed.record(run)
        return run, self.state.up(run)


def bots_secrets(run: Run) -> dict[str, Registration]:
    """Logical name -> the bots' keys' Secrets the run declares."""
    return {r.name: r for r in run.of_type("kubernetes:core/v1:Secret")
            if unwrap(r.inputs)["metadata"].get("namespace") == "voicefleet-bots"}


def name_of(reg: Registration) -> str:
    return str(unwrap(reg.inputs)["metadata"]["name"])


def urns(run: Run, *names: str) -> list[str]:
    found = bots_secrets(run)
    return [found[name].urn for name in names]


def named(run: Run) -> str:
    """The Secret the dispatcher names for the bots it starts (K8S_BOT_SECRET)."""
    return dispatcher_env(run)["K8S_BOT_SECRET"]


def pod_naming(run: Run, secret: str) -> dict[str, Any]:
    """A bot pod as this run's dispatcher builds it, naming `secret` (as a replica of an earlier `up` does)."""
    return pods_of({**dispatcher_env(run), "K8S_BOT_SECRET": secret})[0]


def admitted(run: Run, secret: str) -> bool:
    return refusal(policy_of(run), created(DISPATCHER, pod_naming(run, secret))) is None


def outputs(run: Run) -> dict[str, Any]:
    (found,) = (values for values in run.completed.values() if "cloud" in values)
    return dict(unwrap(found))


@pytest.mark.parametrize("mode", MODES)
def test_a_first_up_writes_the_secret_in_the_first_slot_and_exports_its_name_and_slot(mode: dict[str, str]) -> None:
    stack = Stack()
    run, steps = stack.up(KEYS, **mode)
    (secret,) = bots_secrets(run).values()
    assert secret.name == SLOT_A and steps.created == [secret.urn] and steps.deleted == []
    assert unwrap(secret.inputs)["stringData"] == KEYS and secret.ignore_changes == ()
    assert named(run) == name_of(secret)
    # What the next `up` reads back: a name and a slot, never a value.
    exported = outputs(run)
    assert (exported["botKeysSecret"], exported["botKeysSlot"]) == (name_of(secret), "a")
    assert not [value for value in KEYS.values() if value in json.dumps(exported, default=str)]


@pytest.mark.parametrize("mode", MODES)
def test_a_key_change_makes_the_new_secret_beside_the_last_ones_which_it_keeps_unchanged(mode: dict[str, str]) -> None:
    stack = Stack()
    first, _ = stack.up(KEYS, **mode)
    run, steps = stack.up(ROTATED, **mode)
    old, new = bots_secrets(first)[SLOT_A], bots_secrets(run)[SLOT_B]
    assert name_of(old) != name_of(new)
    # The new one is made with the new values; the last one is declared again under its own slot with no value
    # of its own (its values are the state's), so the `up` neither replaces nor deletes it.
    assert steps.created == [new.urn] and unwrap(new.inputs)["stringData"] == ROTATED
    assert steps.same == [old.urn] and steps.replaced == steps.deleted == steps.made_without_values == []
    kept = bots_secrets(run)[SLOT_A]
    assert "stringData" not in kept.inputs and "data" not in kept.inputs and not kept.retain_on_delete
    assert set(kept.ignore_changes) == {"data", "stringData", "metadata.name"}
    assert unwrap(stack.state.inputs[kept.urn])["metadata"]["name"] == name_of(old)  # the state's name, as its values
    # New bots name the new one; what names it waits for both (and a destroy deletes it before them).
    assert named(run) == name_of(new)
    deployment = run.one(DEPLOYMENT)
    assert {old.urn, new.urn} <= set(deployment.dependencies)
    if mode:
        for template in run.of_type(TEMPLATE):
            (container,) = body(template)["spec"]["podTemplate"]["spec"]["containers"]
            assert container["envFrom"] == [{"secretRef": {"name": name_of(new)}}]
            assert new.urn in template.dependencies
    else:
        # The pods mode's policy admits a pod of either (a replica of the last `up` still names the old one),
        # and no other of the stack's pattern.
        assert admitted(run, name_of(new)) and admitted(run, name_of(old))
        assert not admitted(run, "voicefleet-k8s-test-bot-keys-0123456789ab")
    assert outputs(run)["botKeysSecret"] == name_of(new) and outputs(run)["botKeysSlot"] == "b"


@pytest.mark.parametrize("mode", MODES)
def test_the_next_up_past_the_keep_deletes_the_kept_secret_and_changes_nothing_else(
        mode: dict[str, str]) -> None:
    """The mocks' clock moves an hour per `up`: past the key change's rollout wait."""
    stack = Stack()
    stack.up(KEYS, **mode)
    second, _ = stack.up(ROTATED, **mode)
    old, new = name_of(bots_secrets(second)[SLOT_A]), name_of(bots_secrets(second)[SLOT_B])
    third, steps = stack.up(ROTATED, **mode)
    (kept_urn,) = urns(second, SLOT_A)
    assert steps.deleted == [kept_urn] and steps.same == urns(third, SLOT_B)
    assert steps.created == steps.replaced == steps.updated == []
    assert list(bots_secrets(third)) == [SLOT_B] and named(third) == new
    # Nothing else changes but, in the pods mode, the policy, which no longer admits the deleted one.
    before = {r.urn: unwrap(r.inputs) for r in second.registrations if r.name != SLOT_A}  # the Secret, its component
    after = {r.urn: unwrap(r.inputs) for r in third.registrations}
    assert before.keys() == after.keys()
    changed = sorted(r.type for r in third.registrations if after[r.urn] != before[r.urn])
    assert changed == ([] if mode else [POLICY])
    if not mode:
        assert admitted(third, new) and not admitted(third, old)


@pytest.mark.parametrize("mode", MODES)
def test_an_up_soon_after_a_key_change_keeps_the_last_secret_until_its_replicas_have_drained(
        mode: dict[str, str]) -> None:
    """A CI pipeline's next merge a minute later: the replicas the key change replaced may still be draining
    (each up to maxSessionSeconds + 60 s once the rollout reaches it), and a pod one of them started reads the
    Secret as its container starts. It is kept, and admitted, until the change's rollout wait has passed."""
    stack = Stack()
    first, _ = stack.up(KEYS, **mode)
    second, _ = stack.up(ROTATED, **mode)
    old, new = name_of(bots_secrets(first)[SLOT_A]), name_of(bots_secrets(second)[SLOT_B])
    changed_at = stack.deployed.now - timedelta(hours=1)  # the mocks' clock moves an hour per `up`
    keep = keep_seconds(int(DEFAULTS["maxSessionSeconds"]))  # the stack's default: 1,800 + 60 + 600 s
    stack.deployed.now = changed_at + timedelta(minutes=1)
    third, steps = stack.up(ROTATED, **mode)
    assert sorted(steps.same) == sorted(urns(second, SLOT_A, SLOT_B)) and steps.deleted == []
    assert named(third) == new
    until = (changed_at + timedelta(seconds=keep)).isoformat()
    assert outputs(third)["botKeysKept"] == [{"name": old, "slot": "a", "until": until}]
    if not mode:
        assert admitted(third, new) and admitted(third, old)
    stack.deployed.now = changed_at + timedelta(seconds=keep)  # its replicas have drained
    fourth, steps = stack.up(ROTATED, **mode)
    assert steps.deleted == urns(second, SLOT_A) and outputs(fourth)["botKeysKept"] == []
    if not mode:
        assert admitted(fourth, new) and not admitted(fourth, old)


def test_a_change_before_the_quiet_up_replaces_the_secret_of_two_ups_ago_and_keeps_the_last() -> None:
    stack = Stack()
    first, _ = stack.up(KEYS)
    second, _ = stack.up(ROTATED)
    third, steps = stack.up(AGAIN)
    (slot_a,) = urns(first, SLOT_A)
    (slot_b,) = urns(second, SLOT_B)
    # The first `up`'s Secret (kept by the second) is replaced by the new one, so deleted at this `up`'s end; the
    # second's is kept.
    assert steps.replaced == [slot_a] and steps.deleted == [slot_a] and steps.same == [slot_b]
    assert unwrap(stack.state.inputs[slot_b])["metadata"]["name"] == name_of(bots_secrets(second)[SLOT_B])
    assert unwrap(bots_secrets(third)[SLOT_A].inputs)["stringData"] == AGAIN
    assert named(third) == name_of(bots_secrets(third)[SLOT_A])
    assert outputs(third)["botKeysSlot"] == "a"
    assert not admitted(third, name_of(bots_secrets(first)[SLOT_A]))


def test_a_destroy_after_a_key_change_deletes_both_secrets_after_the_dispatcher() -> None:
    stack = Stack()
    stack.up(KEYS)
    run, _ = stack.up(ROTATED)
    both = urns(run, SLOT_A, SLOT_B)
    # Both are resources of the stack (none retained, so the destroy deletes them) ...
    assert sorted(stack.state.destroyed()) == sorted(both)
    # ... and the dispatcher, whose replicas name them, depends on each: a destroy deletes it first.
    deployment = run.one(DEPLOYMENT).urn
    assert all(deployment in stack.state.dependents[urn] for urn in both)


def test_a_team_secret_is_never_kept_and_the_stacks_own_is_kept_once_after_a_switch_to_it() -> None:
    stack = Stack()
    first, _ = stack.up(None, k8sBotSecret="team-bot-keys")
    second, steps = stack.up(KEYS)  # from the team's Secret to botSecrets: nothing of the stack's to keep
    assert list(bots_secrets(second)) == [SLOT_A] and steps.deleted == []
    assert admitted(second, "team-bot-keys")  # the last `up`'s replicas name it while they drain
    third, steps = stack.up(None, k8sBotSecret="team-bot-keys")  # and back: the stack's own is kept once
    assert named(third) == "team-bot-keys" and steps.same == urns(second, SLOT_A) and steps.deleted == []
    assert "botKeysSecret" not in outputs(third)
    fourth, steps = stack.up(None, k8sBotSecret="team-bot-keys")
    assert bots_secrets(fourth) == {} and steps.deleted == urns(second, SLOT_A)


def test_a_stack_whose_last_up_predates_the_slots_keeps_its_secret_by_its_name() -> None:
    """Such a stack kept its one Secret under the first slot's resource and, in the pods mode, exported its name
    alone (`botSecret`): a name of the stack's own pattern is its own."""
    stack = Stack()
    first, _ = stack.up(KEYS)
    stack.deployed.outputs = {key: value for key, value in stack.deployed.outputs.items()
                              if key not in ("botKeysSecret", "botKeysSlot")}
    run, steps = stack.up(ROTATED)
    assert steps.same == urns(first, SLOT_A) and steps.created == urns(run, SLOT_B) and steps.deleted == []


def test_a_namespace_move_of_a_drained_stack_keeps_nothing() -> None:
    stack = Stack()
    stack.up(KEYS)
    stack.up(KEYS, drain="true")
    run, steps = stack.up(ROTATED, drain="true", k8sBotNamespace="voicefleet-moved")
    assert [name for name, reg in bots_secrets(run).items()] == []  # none left in the old namespace
    (secret,) = [r for r in run.of_type("kubernetes:core/v1:Secret")
                 if unwrap(r.inputs)["metadata"].get("namespace") == "voicefleet-moved"]
    assert secret.name == SLOT_A and steps.replaced == [secret.urn]


AT = datetime(2026, 1, 1, tzinfo=UTC)
KEEP = 1560  # maxSessionSeconds 900 + 60 s, and the rollout's 600 s margin
UNTIL = AT + timedelta(seconds=KEEP)


@pytest.mark.parametrize(("written", "slot", "now", "placed"), [
    (None, "a", Now("n1"), Placement("a")),  # a first `up`
    ("n1", "a", Now("n1"), Placement("a")),  # nothing changed
    ("n1", "a", Now("n2"), Placement("b", (Kept("n1", "a", UNTIL),))),  # a change: another slot, the last kept
    ("n2", "b", Now("n3"), Placement("a", (Kept("n2", "b", UNTIL),))),
    ("n1", "a", Now(None), Placement(None, (Kept("n1", "a", UNTIL),))),  # no keys any more: the last kept
    (None, "a", Now(None), Placement(None)),
    # A preview that cannot know the new name (a made storeMessageSecret drawn anew) shows it beside the last.
    ("n1", "a", Now(None, known=False), Placement("b", (Kept("n1", "a", UNTIL),))),
    (None, "a", Now(None, known=False), Placement("a")),
])  # fmt: skip
def test_the_placement(written: str | None, slot: str, now: Now, placed: Placement) -> None:
    assert placement(written, slot, now, at=AT, keep_seconds=KEEP) == placed
    assert placement(written, slot, now, same_namespace=False, at=AT, keep_seconds=KEEP).kept == ()


def test_a_kept_secret_stays_until_its_time_whatever_the_ups_between() -> None:
    earlier = Kept("n1", "a", UNTIL)
    soon = AT + timedelta(seconds=60)
    assert placement("n2", "b", Now("n2"), kept=(earlier,), at=soon, keep_seconds=KEEP) == Placement("b", (earlier,))
    assert placement("n2", "b", Now("n2"), kept=(earlier,), at=UNTIL, keep_seconds=KEEP) == Placement("b")
    # A second change within the first's keep: the third slot, both earlier ones kept.
    second = placement("n2", "b", Now("n3"), kept=(earlier,), at=soon, keep_seconds=KEEP)
    assert second == Placement("c", (earlier, Kept("n2", "b", soon + timedelta(seconds=KEEP))))
    # A third: every slot kept, refused (below).
    # Back to a kept one's keys: that Secret is this `up`'s again, in its slot.
    back = placement("n2", "b", Now("n1"), kept=(earlier,), at=soon, keep_seconds=KEEP)
    assert back == Placement("a", (Kept("n2", "b", soon + timedelta(seconds=KEEP)),))


def test_a_preview_that_cannot_know_the_new_name_shows_it_made_beside_the_kept_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's own message secret (no storeMessageSecret) drawn anew, as a rotation's step does: at a preview
    its value, so the new Secret's name, is unknown; the preview still shows the last one kept, not deleted."""
    stack = Stack()
    made_secret = {k: v for k, v in ALL_SECRETS.items() if k != "voicefleet:storeMessageSecret"}
    first, _ = stack.up(KEYS, secrets=made_secret)
    with_state(monkeypatch, "random:index/randomPassword:RandomPassword", result=rpc.UNKNOWN)
    secrets = {**made_secret, "voicefleet:botSecrets": json.dumps(KEYS)}
    preview = run_program(config_for("k8s", {}, secrets), list(secrets), stack="k8s-test", deployed=stack.deployed,
                          preview=True)
    state = SecretState(stack.state.namespaces, dict(stack.state.inputs))
    steps = state.up(preview)
    assert steps.same == urns(first, SLOT_A) and steps.created == urns(preview, SLOT_B) and steps.deleted == []
    kept = urns(preview, SLOT_A)[0]
    assert unwrap(state.inputs[kept])["metadata"]["name"] == name_of(bots_secrets(first)[SLOT_A])
    assert contains_unknowns(bots_secrets(preview)[SLOT_B].inputs["metadata"]["name"])  # unknown indeed


def test_a_kept_secret_gone_from_the_state_is_never_made_again_empty_under_its_name() -> None:
    """Deleted out of band and dropped from the state by a `pulumi refresh` (or never made: an `up --target` that
    left it out writes the stack's outputs all the same), the last `up`'s Secret has no state to take its values
    from: the engine makes it as declared, with no value, and a pod of a draining replica would start with none of
    its keys. It is made under a name no pod takes instead."""
    stack = Stack()
    first, _ = stack.up(KEYS)
    (gone,) = urns(first, SLOT_A)
    del stack.state.inputs[gone]  # refreshed away
    run, steps = stack.up(ROTATED)
    old = name_of(bots_secrets(first)[SLOT_A])
    assert steps.made_without_values == [gone] and sorted(steps.created) == sorted(urns(run, SLOT_A, SLOT_B))
    stand_in = name_of(bots_secrets(run)[SLOT_A])
    assert stand_in != old and stand_in != named(run) and not admitted(run, stand_in)
    # The next `up` deletes it, as it would the kept one.
    _, steps = stack.up(ROTATED)
    assert steps.deleted == [gone]


def test_a_kept_secret_is_never_replaced_under_another_name() -> None:
    """A slot's state holds another name than the last `up`'s outputs say (an `up --target` that left the Secrets
    out: the engine writes the root stack's outputs whatever the targets): the kept declaration keeps what the
    state holds, rather than a new Secret under the recorded name with the values of another."""
    stack = Stack()
    first, _ = stack.up(KEYS)
    (slot_a,) = urns(first, SLOT_A)
    stack.state.inputs[slot_a]["metadata"] = {**unwrap(stack.state.inputs[slot_a]["metadata"]),
                                              "name": "voicefleet-k8s-test-bot-keys-0123456789ab"}
    _, steps = stack.up(ROTATED)
    assert steps.same == [slot_a] and steps.replaced == steps.deleted == steps.deleted_first == []


def test_a_third_change_while_every_slot_is_kept_is_refused_naming_when_the_oldest_frees() -> None:
    """Changes at t0, +2 and +4 minutes: the first `up`'s Secret is named by replicas draining until t0 + keep.
    Giving its slot to a fourth Secret would delete it under them: refused until then, the oldest's time named."""
    first = placement("A", "a", Now("B"), at=AT, keep_seconds=KEEP)
    second = placement("B", first.current or "", Now("C"), kept=first.kept, at=AT + timedelta(minutes=2),
                       keep_seconds=KEEP)
    with pytest.raises(SettingsError, match=f"Run this `up` after {UNTIL:%Y-%m-%d %H:%M:%S} UTC, when the oldest "
                                            "frees its slot") as refused:
        placement("C", second.current or "", Now("D"), kept=second.kept, at=AT + timedelta(minutes=4),
                  keep_seconds=KEEP)
    assert "a new one would delete A under them" in str(refused.value)
    # Its time passed, the slot is free; back to the last `up`'s keys needs no slot.
    later = placement("C", second.current or "", Now("D"), kept=second.kept, at=UNTIL, keep_seconds=KEEP)
    assert later.current == "a" and [k.name for k in later.kept] == ["B", "C"]
    same = placement("C", "c", Now("C"), kept=second.kept, at=AT + timedelta(minutes=4), keep_seconds=KEEP)
    assert same.current == "c"


def test_an_up_of_a_third_change_within_the_keeps_is_refused() -> None:
    stack = Stack()
    stack.up(KEYS)
    stack.up(ROTATED)
    stack.deployed.now -= timedelta(minutes=58)  # the mocks' clock moves an hour per `up`: two minutes later
    stack.up(AGAIN)
    stack.deployed.now -= timedelta(minutes=58)
    with pytest.raises(SettingsError, match="botSecrets changed while the bots' keys' three Secrets are each kept"):
        stack.up({**KEYS, "CARTESIA_API_KEY": "SENTINEL-cartesia-key-fourth"})


def test_the_refusal_of_a_third_change_names_the_way_to_rotate_now_and_that_way_passes() -> None:
    """A leaked key cannot wait up to maxSessionSeconds + 660 s: the refusal names a Secret made by hand
    (`k8sBotSecret`, `botSecrets` removed), which writes no Secret and so takes no slot."""
    stack = Stack()
    stack.up(KEYS)
    stack.up(ROTATED)
    stack.deployed.now -= timedelta(minutes=58)
    stack.up(AGAIN)
    stack.deployed.now -= timedelta(minutes=58)
    with pytest.raises(SettingsError, match=r"`pulumi config set k8sBotSecret <its name>` and `pulumi config rm "
                                            r"botSecrets`: the kept ones stay their time"):
        stack.up({**KEYS, "CARTESIA_API_KEY": "SENTINEL-cartesia-key-leaked"})
    run, steps = stack.up(None, k8sBotSecret="team-bot-keys")
    assert steps.deleted == [] and len(outputs(run)["botKeysKept"]) == 3


def test_a_lowered_max_session_seconds_keeps_the_secret_for_the_replaced_replicas_drain() -> None:
    """The replicas a change replaces drain with the last `up`'s termination grace (maxSessionSeconds 3,600 +
    60 s), not the new one's (300 + 60 s): the Secret they name is kept for the longer."""
    stack = Stack()
    first, _ = stack.up(KEYS, maxSessionSeconds="3600")
    changed_at = stack.deployed.now
    second, _ = stack.up(ROTATED, maxSessionSeconds="300")
    old = name_of(bots_secrets(first)[SLOT_A])
    until = changed_at + timedelta(seconds=keep_seconds(3600))
    assert outputs(second)["botKeysKept"] == [{"name": old, "slot": "a", "until": until.isoformat()}]
    # Each `up` records its replicas' drain, which the next one reads back.
    assert [outputs(run)["dispatcherDrainSeconds"] for run in (first, second)] == [keep_seconds(3600),
                                                                                    keep_seconds(300)]
    stack.deployed.now = changed_at + timedelta(minutes=20)  # the old replicas drain until +61 minutes
    third, steps = stack.up(ROTATED, maxSessionSeconds="300")
    assert steps.deleted == [] and admitted(third, old)


def test_a_last_up_without_its_drain_keeps_the_secret_for_its_bot_pods_lifetime() -> None:
    """The first `up` after an upgrade reads a last `up` that recorded no dispatcherDrainSeconds: its bot pods'
    lifetime (pods mode: maxSessionSeconds 3,600 and more) bounds how long its replicas drain, not this `up`'s
    300 s, which would delete the Secret at +20 minutes under replicas draining to +61."""
    stack = Stack()
    first, _ = stack.up(KEYS, maxSessionSeconds="3600")
    del stack.deployed.outputs["dispatcherDrainSeconds"]  # as a version before the output left them
    lifetime = int(stack.deployed.outputs["botPodLifetime"])
    assert lifetime >= 3600
    changed_at = stack.deployed.now
    second, _ = stack.up(ROTATED, maxSessionSeconds="300")
    old = name_of(bots_secrets(first)[SLOT_A])
    until = changed_at + timedelta(seconds=lifetime + 60 + 600)
    assert outputs(second)["botKeysKept"] == [{"name": old, "slot": "a", "until": until.isoformat()}]
    stack.deployed.now = changed_at + timedelta(minutes=20)
    third, steps = stack.up(ROTATED, maxSessionSeconds="300")
    assert steps.deleted == [] and admitted(third, old)


def test_the_keep_is_counted_from_the_end_of_the_dispatchers_rollout(monkeypatch: pytest.MonkeyPatch) -> None:
    """pulumi-kubernetes returns from a Deployment's update once its rollout is complete, which is when the last
    replaced replica gets SIGTERM: a rollout of 20 minutes (a node with no room for a new replica) moves the
    keep 20 minutes on."""
    rollout = timedelta(minutes=20)
    create = RecordingMocks.new_resource

    def rolling_out(mocks: RecordingMocks, args: Any) -> tuple[str, dict[str, Any]]:
        if args.typ == DEPLOYMENT and args.name.endswith("-dispatcher"):
            mocks.deployed.now += rollout
        return create(mocks, args)

    monkeypatch.setattr(RecordingMocks, "new_resource", rolling_out)
    stack = Stack()
    first, _ = stack.up(KEYS)
    changed_at = stack.deployed.now
    second, _ = stack.up(ROTATED)
    until = changed_at + rollout + timedelta(seconds=keep_seconds(int(DEFAULTS["maxSessionSeconds"])))
    assert outputs(second)["botKeysKept"] == [
        {"name": name_of(bots_secrets(first)[SLOT_A]), "slot": "a", "until": until.isoformat()}]
