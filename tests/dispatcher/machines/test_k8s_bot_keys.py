"""K8S_BOT_SECRET: every bot pod takes the bots' keys from one Secret by reference (`envFrom`), read by the
kubelet (the fake's, as the real one makes a container's environment), never by the dispatcher; an idle pod
of keys since rotated out is neither claimed nor kept (the `pods` mode, against tests/fakes/k8s.py)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.reserve import NOTE_STARTED, K8sWarmMachines
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.settings import SettingsError
from tests.dispatcher.machines.test_k8s import env, spec
from tests.fakes.k8s import FakeKubernetes

KEYS = "voicefleet-k8s-dev-bot-keys-0123456789ab"
ROTATED = "voicefleet-k8s-dev-bot-keys-ba9876543210"
VALUES = {"CARTESIA_API_KEY": "SENTINEL-cartesia", "BOT_CHANNEL_URL": "wss://elsewhere.example/bots/channel"}
BEFORE = "2026-01-01T00:00:00Z"  # a pod's creationTimestamp from before any replica of a test started


def made_before(fake: FakeKubernetes, pod: str) -> None:
    """The pod as a replica started before any of a test's made it: its creationTimestamp and its maker's start."""
    metadata = fake.pods[pod]["metadata"]
    metadata["creationTimestamp"] = BEFORE
    metadata["annotations"][NOTE_STARTED] = str(int(datetime.fromisoformat(BEFORE).timestamp()))


def warm(fake: FakeKubernetes, secret: str) -> K8sWarmMachines:
    return K8sWarmMachines.from_env(env(fake, K8S_BOT_SECRET=secret), transport="webrtc", max_idle_seconds=900,
                                    max_session_seconds=600)


async def test_a_session_pod_names_the_secret_and_the_kubelet_gives_its_keys_under_the_launch_values(
        fake_k8s: FakeKubernetes) -> None:
    fake_k8s.secrets[KEYS] = VALUES
    machines = K8sMachines.from_env(env(fake_k8s, K8S_BOT_SECRET=KEYS))
    try:
        s = spec()
        await machines.launch(s)
    finally:
        await machines.aclose()
    [create] = fake_k8s.calls_to("POST", "/pods")
    [container] = create.json()["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": KEYS}}]
    assert "SENTINEL" not in json.dumps(create.json())  # no value in the pod's spec, which anyone may `get`
    given = fake_k8s.envs[f"vf-{s.session_id}"]
    assert given["CARTESIA_API_KEY"] == "SENTINEL-cartesia"
    # A key named as a launch value never replaces it: `env` wins over `envFrom`.
    assert given["BOT_CHANNEL_URL"] == "wss://d.example/bots/channel"


async def test_without_it_a_pod_takes_no_secret(fake_k8s: FakeKubernetes) -> None:
    machines = K8sMachines.from_env(env(fake_k8s))
    try:
        await machines.launch(spec())
    finally:
        await machines.aclose()
    [create] = fake_k8s.calls_to("POST", "/pods")
    assert "envFrom" not in create.json()["spec"]["containers"][0]


async def test_a_missing_secret_fails_the_session_at_once_naming_it(fake_k8s: FakeKubernetes) -> None:
    """The kubelet starts no container whose Secret is missing and retries for ever: the session is failed with
    its words, not left to its start's timeout."""
    machines = K8sMachines.from_env(env(fake_k8s, K8S_BOT_SECRET="team-bot-keys"))
    try:
        s = spec()
        await machines.launch(s)
        machine = await machines.status(s.session_id)
    finally:
        await machines.aclose()
    assert machine is not None and machine.state is MachineState.FAILED
    assert machine.detail == 'CreateContainerConfigError: secret "team-bot-keys" not found'


async def test_an_idle_pod_of_rotated_keys_is_refused_by_a_claim_and_swept(fake_k8s: FakeKubernetes) -> None:
    fake_k8s.secrets |= {KEYS: VALUES, ROTATED: VALUES}
    old, new = warm(fake_k8s, KEYS), warm(fake_k8s, ROTATED)
    try:
        await old.launch_idle("rsv-old", "c")
        await new.launch_idle("rsv-new", "c")
        assert fake_k8s.pods["vf-idle-rsv-old"]["metadata"]["annotations"]["voicefleet.io/bot-secret"] == KEYS
        made_before(fake_k8s, "vf-idle-rsv-old")  # made before `new` started
        listed = {idle.bot_id: idle.created_at for idle in await new.idle_machines()}
        assert listed["rsv-old"] == 0.0 and listed["rsv-new"] > 0  # the sweep retires the old one at once
        with pytest.raises(MachinesError) as refused:
            await new.adopt("rsv-old", spec())
        assert refused.value.reason == "reserve_bot_stale" and ROTATED in refused.value.message
        labels = fake_k8s.pods["vf-idle-rsv-old"]["metadata"]["labels"]
        assert labels["voicefleet.io/state"] == "idle"  # the test op kept the claim from landing
        assert (await new.adopt("rsv-new", spec())).claimed
    finally:
        await old.aclose()
        await new.aclose()


async def test_during_a_rollout_an_old_replica_leaves_the_new_replicas_reserve_alone(fake_k8s: FakeKubernetes) -> None:
    """Old and new replicas run side by side: the old one lists neither the new keys' idle pods made since it
    started (the new replicas' reserve) for its sweep, while the new one takes the old keys' pods for stale."""
    fake_k8s.secrets |= {KEYS: VALUES, ROTATED: VALUES}
    old = warm(fake_k8s, KEYS)
    await old.launch_idle("rsv-old", "c")
    made_before(fake_k8s, "vf-idle-rsv-old")
    new = warm(fake_k8s, ROTATED)
    try:
        await new.launch_idle("rsv-new", "c")
        assert {idle.bot_id: idle.created_at for idle in await old.idle_machines()}.keys() == {"rsv-old"}
        assert {idle.bot_id: idle.created_at for idle in await new.idle_machines()}["rsv-old"] == 0.0
        # Older than the old replica too (a deploy before both): stale to each of them.
        await new.launch_idle("rsv-older", "c")
        made_before(fake_k8s, "vf-idle-rsv-older")
        assert {idle.bot_id: idle.created_at for idle in await old.idle_machines()}["rsv-older"] == 0.0
        assert "vf-idle-rsv-new" in fake_k8s.pods
        assert (await new.adopt("rsv-new", spec())).claimed
    finally:
        await old.aclose()
        await new.aclose()


async def test_an_old_replica_still_topping_up_its_reserve_after_a_new_one_started_has_it_swept(
        fake_k8s: FakeKubernetes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old replicas run on until the new ones are ready, and keep their reserve filled: an idle pod of the old
    keys made after a new replica started is no newer deploy's, and the new replica retires it (else no replica
    of the new deploy would, and it held its node's room until its deadline)."""
    fake_k8s.secrets |= {KEYS: VALUES, ROTATED: VALUES}
    started = time.time()
    monkeypatch.setattr("dispatcher.machines.k8s.reserve.time.time", lambda: started - 60)
    old = warm(fake_k8s, KEYS)  # started a minute before the new one
    monkeypatch.setattr("dispatcher.machines.k8s.reserve.time.time", lambda: started)
    new = warm(fake_k8s, ROTATED)
    try:
        await old.launch_idle("rsv-old-late", "c")  # made now: after the new replica started
        assert {idle.bot_id: idle.created_at for idle in await new.idle_machines()}.get("rsv-old-late") == 0.0
        await new.launch_idle("rsv-new", "c")
        assert "rsv-new" not in {idle.bot_id for idle in await old.idle_machines()}  # still the new ones' own
    finally:
        await old.aclose()
        await new.aclose()


async def test_an_idle_pod_from_before_the_mark_counts_as_stale_once(fake_k8s: FakeKubernetes) -> None:
    machines = warm(fake_k8s, "")
    try:
        await machines.launch_idle("rsv-mark", "c")
        fake_k8s.pods["vf-idle-rsv-mark"]["metadata"]["annotations"].pop("voicefleet.io/bot-secret")
        [idle] = await machines.idle_machines()
        assert idle.created_at == 0.0
    finally:
        await machines.aclose()


def test_a_name_that_is_no_secrets_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="K8S_BOT_SECRET='Team_Keys' is not a Secret name"):
        K8sSettings.from_env({"K8S_NAMESPACE": "voicefleet-bots", "BOT_IMAGE": "img",
                              "K8S_API_URL": "https://kubernetes.default.svc", "K8S_BOT_SECRET": "Team_Keys"})
