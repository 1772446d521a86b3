"""`k8sRegistry`: the k8s stack builds the bot and dispatcher images with images/component.py and pushes them
there (stacks/k8s/images.py), makes a release of each new bot image, and with the registry's credentials
gives the pods a pull Secret through their ServiceAccounts (stacks/k8s/pull_secret.py).

Each `up` is the program's own run after the one before (its outputs read back through the StackReference
to itself); a changed bot project is the mock registry's next bot digest (stacks/tools/mocks.py `bot_build`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pulumi
import pytest

from dispatcher.machines.k8s.settings import DEFAULT_WARM_POOL
from images.component import RELEASE_TAG_PREFIX
from stacks.config import k8s_registry
from stacks.config.reader import Reader
from stacks.config.releases import derived_name
from stacks.config.settings import SettingsError
from stacks.k8s.pull_secret import DOCKER_CONFIG_KEY, DOCKER_CONFIG_TYPE
from stacks.k8s.release_pools import longest_bot_seconds
from stacks.tools.mocks import Deployed, Registration, Run, is_secret, run_program, unwrap
from tests.infra.conftest import config_for
from tests.infra.helpers import changed_names, holding
from tests.infra.k8s.conftest import ALL_SECRETS, container_env, pod_spec
from tests.infra.k8s.test_release_pools import MAX_SESSION_SECONDS, POOL, SANDBOX, TEMPLATE, listed, released

REGISTRY = "ghcr.io/example-org/voicefleet"
USER, PASSWORD = "deploy-bot", "SENTINEL-registry-password-7c2a"
CREDENTIALS = {"voicefleet:k8sRegistryPassword": PASSWORD}
BUILT = {"k8sRegistry": REGISTRY, "k8sBotImage": "", "k8sDispatcherImage": ""}
IMAGE = "docker-build:index:Image"
INDEX = "docker-build:index:Index"
SECRET = "kubernetes:core/v1:Secret"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"


def up(deployed: Deployed, *, credentials: bool = True, mode: dict[str, str] = SANDBOX, preview: bool = False,
       **overrides: str) -> Run:
    """The stack's next `up` (a `preview`: its run at `pulumi preview`, recording nothing for the next)."""
    secrets = {**ALL_SECRETS, **(CREDENTIALS if credentials else {})}
    config = config_for("k8s", {**mode, **BUILT, **({"k8sRegistryUsername": USER} if credentials else {}),
                                **overrides}, secrets)
    run = run_program(config, list(secrets), stack="k8s-test", deployed=deployed, preview=preview)
    if not preview:
        deployed.record(run)
    return run


def inputs(reg: Registration) -> dict[str, Any]:
    return dict(unwrap(reg.inputs))


def secret_at(value: Any, *path: str | int) -> bool:
    """Whether the value at `path` is a secret, itself or inside a secret that holds it."""
    for step in path:
        if is_secret(value):
            return True
        value = value[step]
    return is_secret(value)


def built(run: Run) -> dict[str, str]:
    """Image title (voicefleet-bot, voicefleet-dispatcher, …) → the image by digest the registry holds."""
    found = {}
    for reg in run.of_type(IMAGE):
        image = inputs(reg)
        (tag,) = image["tags"]
        found[image["labels"]["org.opencontainers.image.title"]] = f"{tag.rsplit(':', 1)[0]}@{reg.outputs['digest']}"
    return found


def test_a_first_up_builds_both_images_pushes_them_to_the_registry_and_runs_them_by_digest() -> None:
    run = up(Deployed())
    images = built(run)
    assert sorted(images) == ["voicefleet-bot", "voicefleet-dispatcher"]
    for reg in run.of_type(IMAGE):
        image = inputs(reg)
        assert image["push"] is True and image["tags"][0].startswith(f"{REGISTRY}/")
        (registry,) = image["registries"]
        assert registry["address"] == "ghcr.io" and registry["username"] == USER
        assert secret_at(reg.inputs, "registries", 0, "password")
    (dispatcher,) = pod_spec(run)["containers"]
    assert dispatcher["image"] == images["voicefleet-dispatcher"]
    assert container_env(run)["BOT_IMAGE"]["value"] == images["voicefleet-bot"]
    release = derived_name({"*": images["voicefleet-bot"]})
    (container,) = released(run, TEMPLATE)[release]["spec"]["podTemplate"]["spec"]["containers"]
    assert container["image"] == images["voicefleet-bot"]
    assert [r["name"] for r in listed(run)] == [release]
    (tagged,) = (inputs(reg) for reg in run.of_type(INDEX) if reg.name.endswith("-release"))
    assert tagged["tag"].endswith(f":{RELEASE_TAG_PREFIX}{release}") and tagged["sources"] == [images["voicefleet-bot"]]


def test_a_second_up_with_no_change_changes_nothing() -> None:
    deployed = Deployed()
    first = up(deployed)
    assert changed_names(first, up(deployed)) == []


def test_a_new_bot_project_is_a_new_release_beside_the_old_and_the_oldest_goes_past_releases_kept() -> None:
    deployed = Deployed()
    first = up(deployed, releasesKept="2")
    deployed.bot_build += 1  # the bot project's files changed: the build's label, so its digest
    second = up(deployed, releasesKept="2")
    bots = [built(run)["voicefleet-bot"] for run in (first, second)]
    assert bots[0] != bots[1] and built(first)["voicefleet-dispatcher"] == built(second)["voicefleet-dispatcher"]
    names = [derived_name({"*": bot}) for bot in bots]
    assert [r["name"] for r in listed(second)] == names
    assert sorted(released(second, POOL)) == sorted(names)
    assert released(second, TEMPLATE)[names[0]] == released(first, TEMPLATE)[names[0]]  # the old one untouched
    deployed.bot_build += 1
    third = up(deployed, releasesKept="2")
    newest = derived_name({"*": built(third)["voicefleet-bot"]})
    assert [r["name"] for r in listed(third)] == [names[1], newest]
    # The retired release's pool outlives it until its last session can have ended (test_release_pools.py).
    deployed.now += timedelta(seconds=longest_bot_seconds(MAX_SESSION_SECONDS))
    fourth = up(deployed, releasesKept="2")
    assert sorted(released(fourth, POOL)) == sorted([names[1], newest])
    assert f"{DEFAULT_WARM_POOL}-{names[0]}" not in json.dumps([inputs(r) for r in fourth.of_type(POOL)])


def test_a_preview_of_a_new_bot_shows_the_kept_releases_kept() -> None:
    """At a preview the new build's digest is unknown: the releases the last `up` kept are declared all the same,
    each as it runs (a preview that left them out would show every kept template and pool deleted)."""
    deployed = Deployed()
    up(deployed, releasesKept="2")
    deployed.bot_build += 1
    second = up(deployed, releasesKept="2")
    deployed.bot_build += 1
    preview = up(deployed, releasesKept="2", preview=True)
    names = sorted(released(second, TEMPLATE))
    assert len(names) == 2 and sorted(released(preview, TEMPLATE)) == names
    for name in names:
        assert released(preview, TEMPLATE)[name] == released(second, TEMPLATE)[name]
    pools = {inputs(reg)["metadata"]["name"]: reg for reg in preview.of_type(POOL)}
    for name in names:  # its retiring label waits for the build: the oldest turns retiring if the bot is new
        pool = inputs(pools[f"{DEFAULT_WARM_POOL}-{name}"])
        assert pool["spec"] == released(second, POOL)[name]["spec"]
    # A retiring release past its life is not kept, by the preview either.
    third = up(deployed, releasesKept="2")
    deployed.now += timedelta(seconds=longest_bot_seconds(MAX_SESSION_SECONDS))
    deployed.bot_build += 1
    later = up(deployed, releasesKept="2", preview=True)
    assert sorted(released(later, TEMPLATE)) == sorted(set(released(third, TEMPLATE)) - {names[0]})


def pull_secret_names(run: Run) -> dict[str, str]:
    """namespace → the dockerconfigjson Secret's name there."""
    return {reg.outputs["metadata"]["namespace"]: reg.outputs["metadata"]["name"] for reg in run.of_type(SECRET)
            if inputs(reg).get("type") == DOCKER_CONFIG_TYPE}


@pytest.mark.parametrize("mode", [SANDBOX, {}], ids=["agent-sandbox", "pods"])
def test_credentials_make_a_pull_secret_each_pulling_account_names(mode: dict[str, str]) -> None:
    run = up(Deployed(), mode=mode)
    secrets = pull_secret_names(run)
    assert sorted(secrets) == ["voicefleet", "voicefleet-bots"]
    for reg in run.of_type(SECRET):
        if inputs(reg).get("type") == DOCKER_CONFIG_TYPE:
            assert secret_at(reg.inputs, "stringData", DOCKER_CONFIG_KEY)
            config = json.loads(inputs(reg)["stringData"][DOCKER_CONFIG_KEY])
            entry = config["auths"]["ghcr.io"]
            assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"
    for reg in run.of_type(ACCOUNT):
        account = inputs(reg)
        assert account["imagePullSecrets"] == [{"name": secrets[account["metadata"]["namespace"]]}]
    # The password is in the pull Secrets and the push's and tags' sign-in alone.
    assert {reg.type for reg in holding(run, PASSWORD)} == {SECRET, IMAGE, INDEX}


@pytest.mark.parametrize("mode", [SANDBOX, {}], ids=["agent-sandbox", "pods"])
def test_whatever_makes_pods_waits_for_the_accounts_naming_the_pull_secret(mode: dict[str, str]) -> None:
    """Kubernetes copies an account's imagePullSecrets onto a pod at its creation only: credentials added to a
    running stack must be on both accounts before a pool or a new dispatcher makes a pod of the new image."""
    deployed = Deployed()
    up(deployed, credentials=False, mode=mode)
    run = up(deployed, mode=mode)
    accounts = {reg.urn for reg in run.of_type(ACCOUNT)}
    assert len(accounts) == 2
    makers = [*run.of_type(TEMPLATE), *run.of_type(POOL), run.one("kubernetes:apps/v1:Deployment")]
    assert len(makers) == (5 if mode else 1)  # agent-sandbox: the default pool's and a release's, each a pair
    for reg in makers:
        assert accounts <= set(reg.dependencies), reg.urn


PULL_USER, PULL_PASSWORD = "cluster-pull", "SENTINEL-pull-only-token-51d0"


@pytest.mark.parametrize("push", [True, False], ids=["with-push-credentials", "deployer-login-pushes"])
def test_a_pull_only_credential_is_what_the_cluster_holds(push: bool) -> None:
    """Whoever reads Secrets in the two namespaces gets what the pods pull with: never the push's password,
    which could replace the build cache the next `up` builds from."""
    secrets = {**ALL_SECRETS, **(CREDENTIALS if push else {}), "voicefleet:k8sRegistryPullPassword": PULL_PASSWORD}
    config = config_for("k8s", {**SANDBOX, **BUILT, **({"k8sRegistryUsername": USER} if push else {}),
                                "k8sRegistryPullUsername": PULL_USER}, secrets)
    run = run_program(config, list(secrets), stack="k8s-test", deployed=Deployed())
    assert sorted(pull_secret_names(run)) == ["voicefleet", "voicefleet-bots"]
    for reg in run.of_type(SECRET):
        if inputs(reg).get("type") == DOCKER_CONFIG_TYPE:
            assert secret_at(reg.inputs, "stringData", DOCKER_CONFIG_KEY)
            entry = json.loads(inputs(reg)["stringData"][DOCKER_CONFIG_KEY])["auths"]["ghcr.io"]
            assert base64.b64decode(entry["auth"]).decode() == f"{PULL_USER}:{PULL_PASSWORD}"
    assert {reg.type for reg in holding(run, PULL_PASSWORD)} == {SECRET}
    assert {reg.type for reg in holding(run, PASSWORD)} == ({IMAGE, INDEX} if push else set())
    for reg in run.of_type(IMAGE):
        assert [r["username"] for r in inputs(reg).get("registries") or []] == ([USER] if push else [])


def test_without_credentials_the_nodes_pull_and_the_deployers_docker_login_pushes() -> None:
    run = up(Deployed(), credentials=False)
    assert pull_secret_names(run) == {}
    assert all("imagePullSecrets" not in inputs(reg) for reg in run.of_type(ACCOUNT))
    assert all(not inputs(reg).get("registries") for reg in run.of_type(IMAGE))
    assert sorted(built(run)) == ["voicefleet-bot", "voicefleet-dispatcher"]


def test_images_by_digest_build_nothing_and_need_no_pull_secret() -> None:
    run = run_program(config_for("k8s", SANDBOX, ALL_SECRETS), list(ALL_SECRETS), stack="k8s-test",
                      deployed=Deployed())
    assert run.of_type(IMAGE) == [] and pull_secret_names(run) == {}


def refusal(overrides: dict[str, str], *, secrets: dict[str, str] = ALL_SECRETS,
            plaintext: tuple[str, ...] = ()) -> str:
    config = config_for("k8s", overrides, secrets)
    with pytest.raises(SettingsError) as caught:
        run_program(config, [key for key in secrets if key not in plaintext], stack="k8s-test", deployed=Deployed())
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_registry_and_images_by_digest_together_are_one_clear_error() -> None:
    message = refusal({"k8sRegistry": REGISTRY})
    assert "voicefleet:k8sRegistry and k8sDispatcherImage, k8sBotImage are both set" in message
    assert "pulumi config rm" in message


@pytest.mark.parametrize(("overrides", "secrets", "expected"), [
    ({**BUILT, "k8sRegistryUsername": USER}, ALL_SECRETS,
     "voicefleet:k8sRegistryPassword is required with k8sRegistryUsername"),
    (BUILT, {**ALL_SECRETS, **CREDENTIALS}, "voicefleet:k8sRegistryUsername is required with k8sRegistryPassword"),
    ({"k8sRegistryUsername": USER}, {**ALL_SECRETS, **CREDENTIALS},
     "voicefleet:k8sRegistryUsername is used with k8sRegistry only"),
    ({**BUILT, "k8sRegistry": "https://ghcr.io/org"}, ALL_SECRETS, "voicefleet:k8sRegistry must be a registry"),
    ({**BUILT, "k8sRegistry": "ghcr.io"}, ALL_SECRETS, "voicefleet:k8sRegistry must be a registry"),
    ({**BUILT, "k8sRegistry": "ghcr.io/Org/voicefleet:latest"}, ALL_SECRETS,
     "voicefleet:k8sRegistry must be a registry"),
    ({"k8sBotImage": ""}, ALL_SECRETS, "voicefleet:k8sBotImage is required without k8sRegistry"),
    ({**BUILT, "k8sRegistryPullUsername": USER}, ALL_SECRETS,
     "voicefleet:k8sRegistryPullPassword is required with k8sRegistryPullUsername"),
    ({"k8sRegistryPullUsername": USER}, {**ALL_SECRETS, "voicefleet:k8sRegistryPullPassword": PASSWORD},
     "voicefleet:k8sRegistryPullUsername is used with k8sRegistry only"),
], ids=["no-password", "no-username", "credentials-without-registry", "scheme", "no-path", "tag", "no-images",
        "no-pull-password", "pull-credentials-without-registry"])
def test_bad_combinations_are_refused_with_one_line(overrides: dict[str, str], secrets: dict[str, str],
                                                    expected: str) -> None:
    assert expected in refusal(overrides, secrets=secrets)


@pytest.fixture
def registry_config() -> Iterator[Callable[[dict[str, str]], Any]]:
    """`k8s_registry.load` over the given keys, read as the stack reads them (no secret: no credentials)."""
    def load(values: dict[str, str]) -> Any:
        pulumi.runtime.set_all_config({f"voicefleet:{key}": value for key, value in values.items()}, [])
        return k8s_registry.load(Reader("voicefleet"))
    yield load
    pulumi.runtime.set_all_config({}, [])


@pytest.mark.parametrize("url", [
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/voicefleet", "europe-west1-docker.pkg.dev/my-project/voicefleet",
    "us-docker.pkg.dev/example.com/my-project/repo", "voicefleet.azurecr.io/voicefleet",
    "ghcr.io/example-org/voicefleet", "harbor.example.com:8443/voice/fleet", "localhost:5001/voicefleet",
    "registry:5000/voicefleet",
])
def test_every_real_registry_path_is_accepted(registry_config: Callable[[dict[str, str]], Any], url: str) -> None:
    registry, dispatcher, bot = registry_config({"k8sRegistry": url})
    assert (registry.url, registry.credentials, dispatcher, bot) == (url, None, None, None)
    assert registry.host == url.split("/")[0]


@pytest.mark.parametrize(("key", "value"), [
    ("k8sRegistry", "ghcr.io/org/x\nfoo"),
    ("k8sRegistry", "ghcr.io/org/x y"), ("k8sRegistry", "ghcr.io/org/x;id"), ("k8sRegistry", "registry/x"),
    ("k8sRegistry", "ghcr.io/org/x@sha256:" + "0" * 64),
    ("k8sBotImage", "ghcr.io/org/bot@sha256:" + "0" * 64 + "\nx"),
])
def test_anything_but_a_registry_path_or_an_image_by_digest_is_refused(
        registry_config: Callable[[dict[str, str]], Any], key: str, value: str) -> None:
    good = {"k8sDispatcherImage": "ghcr.io/org/dispatcher@sha256:" + "1" * 64,
            "k8sBotImage": "ghcr.io/org/bot@sha256:" + "2" * 64}
    with pytest.raises(SettingsError) as caught:
        registry_config({key: value} if key == "k8sRegistry" else {**good, key: value})
    assert f"voicefleet:{key} must be" in str(caught.value)


def test_the_password_is_never_plain_config() -> None:
    message = refusal({**BUILT, "k8sRegistryUsername": USER}, secrets={**ALL_SECRETS, **CREDENTIALS},
                      plaintext=("voicefleet:k8sRegistryPassword",))
    assert "voicefleet:k8sRegistryPassword is stored in plain text" in message and PASSWORD not in message


@pytest.mark.parametrize(("typo", "meant"), [("k8sRegistyr", "k8sRegistry"),
                                             ("k8sRegistryUsernmae", "k8sRegistryUsername")])
def test_a_misspelt_registry_key_is_caught_with_the_nearest_name(typo: str, meant: str) -> None:
    message = refusal({**BUILT, typo: REGISTRY})
    assert f"voicefleet:{typo} is no stack key: did you mean {meant}?" in message


def test_the_new_keys_are_known_to_the_plans_check() -> None:
    from stacks.config.stack_keys import unknown

    keys = ["voicefleet:k8sRegistry", "voicefleet:k8sRegistryUsername", "voicefleet:k8sRegistryPassword"]
    assert unknown(keys, read=["k8sRegistryPassword"]) == []
    assert unknown(["voicefleet:k8sRegistryPasword"], read=["k8sRegistryPassword"]) == [
        "voicefleet:k8sRegistryPasword is no stack key: did you mean k8sRegistryPassword?"]


TURN = {"turn": "external", "turnUrls": "turn:turn.example.com:3478?transport=udp"}
TURN_SECRET = {"voicefleet:turnSharedSecret": "SENTINEL-turn-shared-secret-0123456789abcdef"}


def built_targets(run: Run) -> dict[str, dict[str, Any]]:
    """Each built bot image's target → its build arguments."""
    return {inputs(reg)["target"]: inputs(reg).get("buildArgs") or {} for reg in run.of_type(IMAGE)
            if inputs(reg)["labels"]["org.opencontainers.image.title"].startswith("voicefleet-bot")}


def test_one_bot_image_carries_every_transport_the_dispatcher_offers() -> None:
    """docs/kubernetes.md, "One bot image runs every session": the Daily image alone without a relay; with one,
    in `pods` mode the Daily image keeping SmallWebRTC's packages; in `agent-sandbox` mode SmallWebRTC's image."""
    assert set(built_targets(up(Deployed(), mode={}))) == {"runtime"}
    assert built_targets(up(Deployed(), mode={}))["runtime"]["BOT_DAILY_LEAVES_OUT"] != ""
    secrets = {**ALL_SECRETS, **CREDENTIALS, **TURN_SECRET}
    for mode, target in (({}, "runtime"), (SANDBOX, "runtime-webrtc")):
        config = config_for("k8s", {**mode, **BUILT, **TURN, "k8sRegistryUsername": USER}, secrets)
        run = run_program(config, list(secrets), stack="k8s-test", deployed=Deployed())
        targets = built_targets(run)
        assert set(targets) == {target}
        if target == "runtime":
            assert targets[target]["BOT_DAILY_LEAVES_OUT"] == ""  # aiortc's stack stays for SmallWebRTC sessions
        assert container_env(run)["BOT_IMAGE"]["value"] == built(run)["voicefleet-bot" if target == "runtime"
                                                                      else "voicefleet-bot-webrtc"]


def test_in_pods_mode_the_admission_policy_admits_the_built_bot_image() -> None:
    run = up(Deployed(), mode={})
    policy = json.dumps([inputs(reg) for reg in run.of_type(
        "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy")])
    assert built(run)["voicefleet-bot"] in policy


def test_a_new_deployer_with_a_newly_built_bot_is_refused() -> None:
    """The last `up`'s check compares the bots' template, which names the built image: it is known before the
    provider lets anything into the cluster (stacks/k8s/last_outputs.py)."""
    deployed = Deployed()
    up(deployed)
    deployed.bot_build += 1
    with pytest.raises(SettingsError, match="Change k8sDeployer in an `up` of its own"):
        up(deployed, k8sDeployer="new-ci@example.com")
    unchanged = Deployed(outputs=dict(deployed.outputs))  # the same `up` with the bot project as it was
    up(unchanged, k8sDeployer="new-ci@example.com")  # the deployer alone goes through
