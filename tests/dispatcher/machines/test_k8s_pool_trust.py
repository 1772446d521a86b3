"""A pool bot's identity against forgery: the API server stores any ownerReference a writer sends, so a
Sandbox or pod made by anyone who may create one in the bots' namespace, naming a session's claim or the
pool as its owner, or a pod bearing a Sandbox's name, is refused; the real bot is served all along. And
the fake's controller is as strict as the real one: third parties' objects, its garbage collector,
adoption in its real order, the pool's update strategy."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from botchannel.contract import Hello
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.sandbox import SandboxClaims
from dispatcher.machines.k8s.served import cluster_problems
from dispatcher.machines.k8s.settings import K8sSettings
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_sandbox import CHANNEL_URL, add_pool, env, warm_running
from tests.dispatcher.machines.test_k8s_sandbox_warm import Dispatcher, idle_pool_bot
from tests.fakes.k8s import NAMESPACE, TOKEN
from tests.fakes.k8s_sandbox import CORE_GROUP, GROUP, POOL, FakeAgentSandbox
from tests.support.waiting import until

EVIL_IMAGE = "registry.example/not-the-bot:latest"
NEW_IMAGE = "registry.example/voicefleet-bot@sha256:" + "b" * 64  # the next release's, by digest


@pytest.fixture
async def dispatcher(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[Dispatcher]:
    wired = Dispatcher(SandboxClaims.from_env(env(fake_k8s_sandbox)))
    yield wired
    await wired.aclose()


def template(fake: FakeAgentSandbox, image: str | None = None) -> dict[str, Any]:
    """The bot pod's spec as the pool's template has it (BOT_IMAGE), or with another image."""
    settings = K8sSettings.from_env(env(fake))
    return pod_body(settings, "template", image=image or settings.image, env={"BOT_CHANNEL_URL": CHANNEL_URL},
                    labels={}, annotations={}, deadline_seconds=3600)["spec"]


def owner(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1beta1", "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


async def third_party_sandbox(fake: FakeAgentSandbox, name: str, ref: dict[str, Any], *, image: str | None = None,
                              labels: dict[str, str] | None = None, pod_spec: dict[str, Any] | None = None) -> str:
    """A Sandbox as anyone with `create sandboxes` in the namespace writes one; the controller runs its pod."""
    body = {"apiVersion": f"{CORE_GROUP}/v1beta1", "kind": "Sandbox",
            "metadata": {"name": name, "labels": labels or {}, "ownerReferences": [ref]},
            "spec": {"podTemplate": {"spec": pod_spec or template(fake, image)}}}
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        created = await client.post(f"/apis/{CORE_GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxes", json=body)
    assert created.status_code == 201, created.text
    fake.set_phase(name, "Running")
    return name


def hello(fake: FakeAgentSandbox, pod: str, session_id: str | None = None) -> Hello:
    return Hello(machine_id=pod, capabilities=("daily",), identity=fake.token_of(pod), session_id=session_id)


async def served_session(dispatcher: Dispatcher, fake: FakeAgentSandbox) -> tuple[str, str]:
    """A session whose claim adopted the idle pool bot here: (its id, the bot's pod)."""
    warm, bot = await idle_pool_bot(dispatcher, fake)
    s = spec()
    await dispatcher.start(s)
    await until(lambda: len(bot.assigns()) == 1, "the session's assign", timeout=20)
    return s.session_id, warm


def still_served(dispatcher: Dispatcher, session_id: str, pod: str) -> bool:
    link = dispatcher.channels.link_for(session_id)
    return link is not None and link.machine_id == pod


def pool_identity(dispatcher: Dispatcher) -> Any:
    assert isinstance(dispatcher.machines, SandboxClaims)
    return dispatcher.machines.pool_identity


async def test_a_sandbox_naming_a_live_claim_with_another_uid_is_not_that_sessions_bot(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    session_id, warm = await served_session(dispatcher, fake)
    fake.collecting = False  # the garbage collector has not yet seen the forged owner's uid is missing
    forged = await third_party_sandbox(fake, "forged", owner("SandboxClaim", f"vf-{session_id}", "0" * 36))

    refused = await pool_identity(dispatcher).grant(hello(fake, forged, session_id))
    assert isinstance(refused, str) and "not that claim's" in refused, refused
    socket = dispatcher.dial(fake, forged, session_id)  # through the channel: refused, the real bot kept
    await until(lambda: dispatcher.serving[-1].done(), "the refusal", timeout=20)
    assert not socket.welcomed() and still_served(dispatcher, session_id, warm)

    fake.collecting = True  # then the collector deletes the orphan and its pod, as the real one does
    await until(lambda: "forged" not in fake.sandboxes and "forged" not in fake.pods, "the orphan collected",
                timeout=20)


async def test_a_sandbox_naming_the_claim_with_its_uid_is_refused_when_the_claim_holds_another(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    session_id, warm = await served_session(dispatcher, fake)
    claim = fake.claims[f"vf-{session_id}"]
    forged = await third_party_sandbox(fake, "forged", owner("SandboxClaim", f"vf-{session_id}",
                                                             claim["metadata"]["uid"]))
    refused = await pool_identity(dispatcher).grant(hello(fake, forged))
    assert isinstance(refused, str) and f"holds {warm}, not forged" in refused, refused
    assert still_served(dispatcher, session_id, warm)
    granted = await pool_identity(dispatcher).grant(hello(fake, warm))  # the real one still is the session's
    assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("session", session_id)


async def test_a_sandbox_naming_the_pool_is_refused_unless_the_pool_made_it(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, _ = await idle_pool_bot(dispatcher, fake)
    pool = fake.warm_pools[POOL]["metadata"]
    fake.collecting = False
    wrong_uid = await third_party_sandbox(fake, "forged-a", owner("SandboxWarmPool", POOL, "0" * 36))
    unlabelled = await third_party_sandbox(fake, "forged-b", owner("SandboxWarmPool", POOL, pool["uid"]))
    other_image = await third_party_sandbox(fake, "forged-c", owner("SandboxWarmPool", POOL, pool["uid"]),
                                            image=EVIL_IMAGE, labels=fake.sandbox_labels(warm))
    # The pool's Sandbox as it makes them (its uid, its label), BOT_IMAGE, but its pod template edited.
    commanded, elsewhere = template(fake), template(fake)
    commanded["containers"][0]["command"] = ["sh", "-c", "cat /var/run/secrets/voicefleet/token"]
    elsewhere["containers"][0]["env"] = [{"name": "BOT_CHANNEL_URL", "value": "wss://evil.example/bots/channel"}]
    other_command = await third_party_sandbox(fake, "forged-d", owner("SandboxWarmPool", POOL, pool["uid"]),
                                              labels=fake.sandbox_labels(warm), pod_spec=commanded)
    other_channel = await third_party_sandbox(fake, "forged-e", owner("SandboxWarmPool", POOL, pool["uid"]),
                                              labels=fake.sandbox_labels(warm), pod_spec=elsewhere)
    identity = pool_identity(dispatcher)
    assert "not that pool's" in str(await identity.grant(hello(fake, wrong_uid)))
    assert "lacks pool" in str(await identity.grant(hello(fake, unlabelled)))
    assert "not the bot's image" in str(await identity.grant(hello(fake, other_image)))
    assert "command or arguments" in str(await identity.grant(hello(fake, other_command)))
    assert "not this dispatcher's channel" in str(await identity.grant(hello(fake, other_channel)))
    granted = await identity.grant(hello(fake, warm))
    assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("idle", warm)


async def test_a_new_images_pool_bot_is_admitted_by_a_replica_still_on_the_old_image(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """The stack changes the template before the dispatcher rolls: the image the template names now is
    accepted beside BOT_IMAGE, and an image neither names still is not."""
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [old] = await warm_running(fake, 1)
    fake.set_template(POOL, template(fake, NEW_IMAGE))
    await until(lambda: old not in fake.sandboxes and len(fake.warm(POOL)) == 1, "the pool recreated", timeout=20)
    [new] = await warm_running(fake, 1)
    assert fake.pods[new]["spec"]["containers"][0]["image"] == NEW_IMAGE
    granted = await pool_identity(dispatcher).grant(hello(fake, new))
    assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("idle", new), granted

    pool = fake.warm_pools[POOL]["metadata"]
    fake.collecting = False
    other = await third_party_sandbox(fake, "forged", owner("SandboxWarmPool", POOL, pool["uid"]),
                                      image=EVIL_IMAGE, labels=fake.sandbox_labels(new))
    refused = await pool_identity(dispatcher).grant(hello(fake, other))
    assert isinstance(refused, str) and "not the bot's image (BOT_IMAGE) nor the one its pool's template" in refused


async def test_a_pool_bot_of_another_web_transport_is_refused_at_its_hello(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """While a relay is added or removed, the template boots the other transport before the replicas roll:
    such a bot could not serve this replica's sessions, so it is never admitted, warm or bound."""
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    other = Hello(machine_id=warm, capabilities=("webrtc", "websocket"), identity=fake.token_of(warm))
    refused = await pool_identity(dispatcher).grant(other)
    assert isinstance(refused, str) and "serves webrtc, websocket, not daily, the web sessions" in refused, refused
    assert not isinstance(await pool_identity(dispatcher).grant(hello(fake, warm)), str)


async def test_the_template_is_read_only_for_a_pod_not_on_bot_image_and_a_failed_read_is_no_admission(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [old] = await warm_running(fake, 1)
    identity = pool_identity(dispatcher)
    assert not isinstance(await identity.grant(hello(fake, old)), str)
    assert not [c for c in fake.calls if "/sandboxtemplates/" in c.path]  # BOT_IMAGE: nothing more read

    fake.set_template(POOL, template(fake, NEW_IMAGE))
    await until(lambda: old not in fake.sandboxes and len(fake.warm(POOL)) == 1, "the pool recreated", timeout=20)
    [new] = await warm_running(fake, 1)
    # The API server's bad moment: no answer is no admission, and no verdict either (the caller tries again).
    fake.fail(503, times=1000, path_contains="/sandboxtemplates/")  # past the client's bounded retries
    assert "did not answer" in str(await identity.grant(hello(fake, new)))
    fake.knobs.failures.clear()
    # A Role without the verb: refused for its image, the missing grant said once in the log.
    fake.fail(403, times=2, path_contains="/sandboxtemplates/", body={
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "sandboxtemplates.extensions.agents.x-k8s.io is forbidden"})
    with caplog.at_level("WARNING", logger="dispatcher.machines.k8s"):
        for _ in range(2):
            assert "not the bot's image" in str(await identity.grant(hello(fake, new)))
    told = [r for r in caplog.records if "template could not be read" in r.getMessage()]
    assert len(told) == 1 and "sandboxtemplates (extensions.agents.x-k8s.io)" in told[0].getMessage()
    assert not isinstance(await identity.grant(hello(fake, new)), str)  # the read answered: admitted


async def test_a_pod_a_third_party_made_with_a_sandboxs_name_and_owner_is_refused(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    fake.remove_pod(warm, 0)  # its pod gone (its bot exited): the name is free until the controller acts
    settings = K8sSettings.from_env(env(fake))
    pod = pod_body(settings, warm, image=EVIL_IMAGE, env={}, labels={}, annotations={}, deadline_seconds=60)
    pod["metadata"]["ownerReferences"] = [{"apiVersion": f"{CORE_GROUP}/v1beta1", "kind": "Sandbox", "name": warm,
                                           "uid": fake.sandboxes[warm]["uid"], "controller": True}]
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        created = await client.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=pod)
    assert created.status_code == 201, created.text
    fake.set_phase(warm, "Running")
    refused = await pool_identity(dispatcher).grant(hello(fake, warm))
    assert isinstance(refused, str) and "not the bot's image" in refused, refused


async def test_a_pool_not_recreating_its_warm_sandboxes_on_a_new_template_stops_the_start(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    fake.add_pool(POOL, 0, template(fake), update_strategy=None)
    [problem] = await cluster_problems(env(fake))
    assert "updateStrategy" in problem and "unset (OnReplenish)" in problem and "type: Recreate" in problem
    fake.warm_pools[POOL]["spec"]["updateStrategy"] = {"type": "Recreate"}
    assert await cluster_problems(env(fake)) == []


async def test_the_fake_controller_adopts_in_its_real_order_and_honours_the_update_strategy(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    fake.add_pool(POOL, 1, template(fake), update_strategy="OnReplenish")
    fake.add_pool("recreated", 1, template(fake))
    await until(lambda: len(fake.warm(POOL)) == 1 and len(fake.warm("recreated")) == 1, "both pools", timeout=20)
    [kept], [replaced] = fake.warm(POOL), fake.warm("recreated")
    fake.set_template(POOL, template(fake, EVIL_IMAGE))
    fake.set_template("recreated", template(fake, EVIL_IMAGE))
    await until(lambda: replaced not in fake.sandboxes and len(fake.warm("recreated")) == 1, "Recreate", timeout=20)
    assert fake.warm(POOL) == [kept]  # OnReplenish: kept until claimed

    # Adoption: the claim names its Sandbox first, while the pool still holds it; then the owner moves.
    fake.set_phase(kept, "Running")
    seen: list[tuple[bool, bool]] = []  # (the claim names it, the claim owns it), as each read saw them
    machines = SandboxClaims.from_env(env(fake))
    try:
        s = spec()
        await machines.launch(s)

        def read() -> bool:
            with fake._pods_lock:
                notes = fake.claims[f"vf-{s.session_id}"]["metadata"].get("annotations") or {}
                seen.append((notes.get("agents.x-k8s.io/sandbox-name") == kept,
                             "agents.x-k8s.io/claim-uid" in fake.sandbox_labels(kept)))
            return seen[-1][1]

        await until(read, "the adoption", timeout=20)
    finally:
        await machines.aclose()
    assert (False, True) not in seen and seen[-1] == (True, True)
    assert "agents.x-k8s.io/warm-pool-sandbox" not in fake.sandbox_labels(kept)


async def test_the_sessions_claim_is_read_back_before_its_bot_is_admitted(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    session_id, warm = await served_session(dispatcher, fake)
    claim = fake.claims[f"vf-{session_id}"]
    identity = pool_identity(dispatcher)
    fake.reconciling = False  # the claim as each test reads it, not yet rewritten by the controller

    async def grant_with(status: dict[str, Any] | None = None, **metadata: Any) -> object:
        """The pod's grant while the claim reads with these fields replaced, then the claim as it was."""
        with fake._pods_lock:
            kept = copy.deepcopy(claim)
            claim["metadata"].update(metadata)
            claim["status"].update(status or {})
        try:
            return await identity.grant(hello(fake, warm))
        finally:
            with fake._pods_lock:
                claim.update(kept)

    # Between adoption's writes the claim names its Sandbox in its annotation only: its bot is admitted.
    granted = await grant_with({"sandbox": {}})
    assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("session", session_id)
    other = {**claim["metadata"]["annotations"], "agents.x-k8s.io/sandbox-name": "another"}
    assert f"holds another, not {warm}" in str(await grant_with({"sandbox": {}}, annotations=other))
    assert "being deleted" in str(await grant_with(deletionTimestamp="2026-01-01T00:00:00Z"))
    assert "not one this dispatcher made" in str(await grant_with(labels={}))
    with fake._pods_lock:
        claim["spec"]["warmPoolRef"] = {"name": "another"}
    assert "on pool another" in str(await identity.grant(hello(fake, warm)))
    with fake._pods_lock:
        claim["spec"]["warmPoolRef"] = {"name": POOL}
    assert still_served(dispatcher, session_id, warm)


async def test_a_pool_pod_given_an_ephemeral_container_is_refused(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """`pods/ephemeralcontainers` adds a container of any image to a running pool pod, beside its token."""
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    with fake._pods_lock:
        fake.pods[warm]["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": EVIL_IMAGE}]
        fake._bump(fake.pods[warm])
    refused = await pool_identity(dispatcher).grant(hello(fake, warm))
    assert isinstance(refused, str) and "ephemeral containers" in refused, refused

