"""Azure Container Instances against the fake ARM (tests/fakes/arm_aci.py): what the contract does not
cover — secure values, restart policy, the regional quota, ARM's throttling bucket, a group lost
mid-session, the ARM binding of a bot's credential, and the settings a deployment gets wrong."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from botchannel.contract import IMAGE_VARIABLE, Hello
from dispatcher.app import create_app
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.aci.provider import AciMachines
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import LaunchSpec, MachinesError, MachineState
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.settings import Settings, SettingsError, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import refused_second_launch
from tests.fakes.arm_aci import FakeArmAci
from tests.fakes.daily import FakeDaily
from tests.fakes.key_vault import FakeKeyVault

KEY = "aci-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


def spec(channel_token: str | None = None) -> LaunchSpec:
    return LaunchSpec(session_id=secrets.token_hex(12), body_digest="d" * 32, max_session_seconds=600,
                      body={"persona": "tester"}, room_url="https://x.daily.co/r", bot_token="bot.jwt.secret",
                      channel_token=channel_token)


def provider(fake: FakeArmAci, **env: str) -> AciMachines:
    return AciMachines.from_env({**fake.env, "ACI_RETRY_DEADLINE_SECONDS": "3", **env}, LocalCoordination())


async def test_values_are_secure_values_and_the_group_never_restarts(fake_aci: FakeArmAci) -> None:
    machines = provider(fake_aci, BOT_CHANNEL_URL="wss://d.example/bots/channel")
    s = spec()
    try:
        await machines.launch(s)
        [put] = [c.json() for c in fake_aci.calls_to("PUT", "/containerGroups/")]
        env = put["properties"]["containers"][0]["properties"]["environmentVariables"]
        assert env and all(set(e) == {"name", "secureValue"} for e in env)  # plain: ACI_BOT_SETTINGS only
        assert put["properties"]["restartPolicy"] == "Never"
        shown = str(await machines._get(f"vf-{s.session_id}"))
        assert "bot.jwt.secret" not in shown and "wss://d.example" not in shown  # GET hides them
        fake_aci.set_state(f"vf-{s.session_id}", "Terminated", 0)
        machine = await machines.status(s.session_id)
        assert machine is not None and machine.state is MachineState.ENDED  # not restarted into the session
    finally:
        await machines.aclose()


def put_containers(fake: FakeArmAci) -> list[dict]:
    return [c.json()["properties"]["containers"][0]["properties"] for c in fake.calls_to("PUT", "/containerGroups/")]


async def test_the_deployments_bot_settings_are_plain_values_beside_the_secure_launch_values(
        fake_aci: FakeArmAci) -> None:
    machines = provider(fake_aci, ACI_BOT_SETTINGS="LOG_FORMAT=json,OTEL_SERVICE_NAME=voicefleet-bot",
                        BOT_CHANNEL_URL="wss://d.example/bots/channel")
    try:
        await machines.launch(spec())
    finally:
        await machines.aclose()
    [container] = put_containers(fake_aci)
    plain = {e["name"]: e["value"] for e in container["environmentVariables"] if "value" in e}
    assert plain == {"LOG_FORMAT": "json", "OTEL_SERVICE_NAME": "voicefleet-bot"}
    secure = {e["name"] for e in container["environmentVariables"] if "secureValue" in e}
    assert "BOT_CHANNEL_URL" in secure and "VOICEFLEET_SESSION_ID" in secure and not secure & set(plain)


async def test_a_webrtc_session_runs_the_webrtc_bot_and_a_daily_one_the_daily_bot(fake_aci: FakeArmAci) -> None:
    webrtc_image = "vftest.azurecr.io/bot-webrtc@sha256:" + "1" * 64
    fake_aci.registry.add(webrtc_image)
    machines = provider(fake_aci, ACI_BOT_IMAGE_WEBRTC=webrtc_image)
    webrtc = LaunchSpec(session_id=secrets.token_hex(12), body_digest="d" * 32, max_session_seconds=600,
                        transport="webrtc", ice_config={"iceServers": []})
    try:
        await machines.launch(spec())
        await machines.launch(webrtc)
    finally:
        await machines.aclose()
    daily_bot, webrtc_bot = put_containers(fake_aci)
    assert daily_bot["image"] == fake_aci.env["ACI_BOT_IMAGE"] and webrtc_bot["image"] == webrtc_image
    reported = {e["name"]: e["secureValue"] for e in webrtc_bot["environmentVariables"]}
    assert reported[IMAGE_VARIABLE] == webrtc_image  # the bot reports the image it runs


async def test_bot_secrets_are_read_once_from_key_vault_and_reach_every_group_as_secure_values(
        fake_aci: FakeArmAci, fake_key_vault: FakeKeyVault, caplog: pytest.LogCaptureFixture) -> None:
    fake_key_vault.secrets[("deepgram-api-key", "v1")] = "SENTINEL-dg-value"
    fake_key_vault.secrets[("cartesia-api-key", "v7")] = "SENTINEL-ca-value"
    references = (f"DEEPGRAM_API_KEY={fake_key_vault.uri('deepgram-api-key', 'v1')},"
                  f"CARTESIA_API_KEY={fake_key_vault.uri('cartesia-api-key', 'v7')}")
    machines = provider(fake_aci, ACI_BOT_SECRETS=references)
    try:
        for _ in range(3):
            await machines.launch(spec())
    finally:
        await machines.aclose()
    for container in put_containers(fake_aci):
        secure = {e["name"]: e.get("secureValue") for e in container["environmentVariables"]}
        assert secure["DEEPGRAM_API_KEY"] == "SENTINEL-dg-value" and secure["CARTESIA_API_KEY"] == "SENTINEL-ca-value"
        assert "SENTINEL" not in str([e for e in container["environmentVariables"] if "value" in e])
    assert sorted(fake_key_vault.reads) == [("cartesia-api-key", "v7"), ("deepgram-api-key", "v1")]  # once each
    assert "SENTINEL" not in caplog.text


async def test_a_bot_secret_the_dispatcher_may_not_read_refuses_the_launch_naming_the_variable(
        fake_aci: FakeArmAci, fake_key_vault: FakeKeyVault) -> None:
    fake_key_vault.secrets[("deepgram-api-key", "v1")] = "SENTINEL-dg-value"
    fake_key_vault.forbidden.add("deepgram-api-key")
    machines = provider(fake_aci, ACI_BOT_SECRETS=f"DEEPGRAM_API_KEY={fake_key_vault.uri('deepgram-api-key', 'v1')}")
    try:
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert caught.value.reason == "aci_unauthorized" and "DEEPGRAM_API_KEY" in str(caught.value)
    assert "SENTINEL" not in str(caught.value) and not fake_aci.calls_to("PUT", "/containerGroups/")


async def test_the_regional_quota_is_capacity_with_a_retry_hint(fake_aci: FakeArmAci) -> None:
    fake_aci.quota = 1
    refused = await refused_second_launch(provider(fake_aci), spec)
    assert refused.reason == "aci_capacity" and refused.retry_after
    answer = as_api_error(refused)
    assert answer.status == 503 and answer.retry_after


async def test_arms_write_bucket_is_waited_out_with_its_retry_after(fake_aci: FakeArmAci) -> None:
    from tests.fakes.arm_aci import Bucket

    fake_aci.writes = Bucket(1, 2.0)  # one write, then one every half second
    machines = provider(fake_aci)
    try:
        first, second = [await machines.launch(spec()) for _ in range(2)]
    finally:
        await machines.aclose()
    assert first.created and second.created
    assert len(fake_aci.calls_to("PUT", "/containerGroups/")) == 3  # the second: refused once (429), then made


async def test_deletes_spend_the_create_budget(fake_aci: FakeArmAci) -> None:
    machines = provider(fake_aci, ACI_CREATE_RATE="0.01", ACI_CREATE_BURST="2", ACI_CREATE_MAX_WAIT="0")
    try:
        s = spec()
        await machines.launch(s)
        await machines.stop(s.session_id)  # the create and the delete: ACI's budget counts both
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert caught.value.reason == "aci_rate_limited"


async def test_a_group_lost_mid_session_is_no_machine_and_a_failed_create_is_failed(fake_aci: FakeArmAci) -> None:
    machines = provider(fake_aci)
    try:
        s = spec()
        await machines.launch(s)
        fake_aci.set_state(f"vf-{s.session_id}", "Running")
        del fake_aci.groups[f"vf-{s.session_id}"]  # deleted from the portal, or the region lost it
        assert await machines.status(s.session_id) is None
        assert s.session_id not in {m.session_id for m in await machines.list()}
        fake_aci.create_error = "InaccessibleImage"
        failing = spec()
        await machines.launch(failing)
        machine = await machines.status(failing.session_id)
    finally:
        await machines.aclose()
    assert machine is not None and machine.state is MachineState.FAILED and machine.detail == "InaccessibleImage"


async def test_a_bots_credential_admits_it_only_while_its_group_runs(fake_aci: FakeArmAci) -> None:
    machines = provider(fake_aci)
    s = spec(channel_token="tok")
    grant, hello = BotGrant("session", s.session_id, 2**40), Hello(machine_id="m")
    try:
        assert "no container group" in str(await machines.identity.refusal(grant, hello))
        await machines.launch(s)
        fake_aci.set_state(f"vf-{s.session_id}", "Running")
        assert await machines.identity.refusal(grant, hello) is None
        other = BotGrant("session", secrets.token_hex(12), 2**40)
        assert await machines.identity.refusal(other, hello) is not None
        fake_aci.set_state(f"vf-{s.session_id}", "Terminated", 0)
        assert "has ended" in str(await machines.identity.refusal(grant, hello))
    finally:
        await machines.aclose()


async def test_a_wrong_client_secret_is_unauthorized(fake_aci: FakeArmAci) -> None:
    machines = provider(fake_aci, AZURE_CLIENT_SECRET="wrong")
    try:
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert caught.value.reason == "aci_unauthorized" and "wrong" not in str(caught.value)


async def test_list_follows_next_links(fake_aci: FakeArmAci) -> None:
    fake_aci.page_size = 2
    machines = provider(fake_aci)
    try:
        launched = {(await machines.launch(spec())).machine.session_id for _ in range(5)}
        assert launched <= {m.session_id for m in await machines.list()}
    finally:
        await machines.aclose()


@pytest.mark.parametrize(("change", "names"), [
    ({"ACI_BOT_IMAGE": "vftest.azurecr.io/bot:latest"}, "by digest"),
    ({"ARM_ENDPOINT": "http://127.0.0.1:1"}, "must be https"),
    ({"ARM_ENDPOINT": "", "ACI_AUTH": "none"}, "local fake"),
    ({"ACI_GROUP_PREFIX": "Upper"}, "ACI_GROUP_PREFIX"),
    ({"ACI_GROUP_PREFIX": "vf-azure-prod--"}, "two in a row"),  # `vf-azure-prod---<id>`: ACI refuses it
    ({"AZURE_LOCATION": ""}, "AZURE_LOCATION"),
    ({"ACI_BOT_IMAGE_WEBRTC": "vftest.azurecr.io/bot-webrtc:latest"}, "ACI_BOT_IMAGE_WEBRTC.*by digest"),
    ({"ACI_BOT_SETTINGS": "LOG_FORMAT=json,_BAD=1"}, "ACI_BOT_SETTINGS: '_BAD'"),
    ({"ACI_BOT_SECRETS": "K=https://v.vault.azure.net/secrets/k"}, "ACI_BOT_SECRETS: K must be a versioned"),
    ({"ACI_BOT_SECRETS": "K=http://v.vault.azure.net/secrets/k/1"}, "ACI_BOT_SECRETS: K must be a versioned"),
])
def test_settings_a_deployment_gets_wrong_are_named(fake_aci: FakeArmAci, change: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        AciSettings.from_env({**fake_aci.env, **change})


@asynccontextmanager
async def app_client(fake_aci: FakeArmAci, fake_daily: FakeDaily, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """The dispatcher app on MACHINES=aci against the fake ARM and the fake Daily."""
    settings = Settings(machines="aci", api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600)
    app = create_app(settings, env={}, machines=provider(fake_aci, **env),
                     rooms=DailyRooms(DailySettings.from_env(fake_daily.env)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        yield http
    await app.state.voicefleet.aclose()


@pytest.fixture
async def app_http(fake_aci: FakeArmAci, fake_daily: FakeDaily) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(fake_aci, fake_daily) as http:
        yield http


async def test_a_full_region_answers_a_start_503_with_its_reason_and_a_retry_hint(
        app_http: httpx.AsyncClient, fake_aci: FakeArmAci) -> None:
    fake_aci.quota = 0
    answer = await app_http.post("/start", json={}, headers=AUTH)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "aci_capacity"
    assert float(answer.headers["Retry-After"]) > 0


async def test_a_session_whose_group_is_lost_mid_session_is_gone_not_running(
        app_http: httpx.AsyncClient, fake_aci: FakeArmAci) -> None:
    started = await app_http.post("/start", json={}, headers=AUTH)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    fake_aci.set_state(f"vf-{session_id}", "Running")
    assert (await app_http.get(f"/sessions/{session_id}", headers=AUTH)).json()["status"] == "started"
    del fake_aci.groups[f"vf-{session_id}"]  # the region lost it, or someone deleted it
    lost = await app_http.get(f"/sessions/{session_id}", headers=AUTH)
    # The provider is the source of truth: no group, no session (as for a deleted Compute Engine VM).
    assert lost.status_code == 404 and lost.json()["error"]["code"] == "not_found", lost.text
    assert (await app_http.delete(f"/sessions/{session_id}", headers=AUTH)).status_code in (204, 404)


def arms_write_bucket_spent(fake: FakeArmAci) -> None:
    from tests.fakes.arm_aci import Bucket

    fake.writes = Bucket(0, 0.01)  # the subscription's writes: the next in 100 s


def acis_create_budget_spent(fake: FakeArmAci) -> None:
    fake.changes.extend([time.time()] * 100)  # 100 creates and deletes in the last 5 minutes


@pytest.mark.parametrize("throttle", [arms_write_bucket_spent, acis_create_budget_spent])
async def test_a_throttle_past_the_retry_deadline_answers_a_start_503_with_its_reason_and_arms_retry_after(
        app_http: httpx.AsyncClient, fake_aci: FakeArmAci, throttle: Callable[[FakeArmAci], None]) -> None:
    throttle(fake_aci)
    answer = await app_http.post("/start", json={}, headers=AUTH)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "aci_throttled", answer.text
    assert float(answer.headers["Retry-After"]) >= 60  # ARM's own hint, not a guess
    assert fake_aci.standing() == {}


async def test_the_deployments_own_create_budget_spent_answers_a_start_503_with_its_reason_and_when(
        fake_aci: FakeArmAci, fake_daily: FakeDaily) -> None:
    async with app_client(fake_aci, fake_daily, ACI_CREATE_RATE="0.01", ACI_CREATE_BURST="1",
                          ACI_CREATE_MAX_WAIT="0") as http:
        assert (await http.post("/start", json={}, headers=AUTH)).status_code == 201
        answer = await http.post("/start", json={}, headers=AUTH)  # ACI's budget, as the deployment counts it
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "aci_rate_limited", answer.text
    assert float(answer.headers["Retry-After"]) >= 60  # the next token, one per 100 s
    assert len(fake_aci.created) == 1  # refused before ARM was asked


@pytest.mark.parametrize("audience", [None, "https://management.chinacloudapi.cn"])
async def test_a_service_principal_signs_in_for_arms_audience_not_for_the_endpoint_it_calls(
    fake_aci: FakeArmAci, audience: str | None
) -> None:
    """ARM_ENDPOINT is where the calls go (here the fake's own address); Entra issues ARM's tokens for
    Azure's management audience, or another cloud's (ARM_AUDIENCE), never for that address."""
    if audience is not None:
        fake_aci.arm_scope = f"{audience}/.default"
    machines = provider(fake_aci, **({"ARM_AUDIENCE": audience} if audience else {}))
    try:
        assert (await machines.launch(spec())).created
    finally:
        await machines.aclose()
    [asked] = [c.body.decode() for c in fake_aci.calls_to("POST", "/oauth2/v2.0/token")]
    expected = audience or "https://management.azure.com"
    assert httpx.QueryParams(asked)["scope"] == expected + "/.default"


def test_an_arm_audience_that_is_not_https_is_refused_naming_azures(fake_aci: FakeArmAci) -> None:
    with pytest.raises(SettingsError, match="https://management.azure.com"):
        AciSettings.from_env({**fake_aci.env, "ARM_AUDIENCE": "management.azure.com"})


async def test_a_create_accepted_then_failed_is_kept_where_the_answer_says(
        app_http: httpx.AsyncClient, fake_aci: FakeArmAci) -> None:
    """`?wait=started` answers 502 naming GET /sessions/{id}: that GET shows the failed session, after
    the start's clean-up."""
    fake_aci.create_error = "InaccessibleImage"
    answer = await app_http.post("/start?wait=started", json={}, headers=AUTH)
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "start_failed", answer.text
    session_id = answer.json()["error"]["session_id"]
    assert f"GET /sessions/{session_id} keeps it" in answer.json()["error"]["message"]
    kept = await app_http.get(f"/sessions/{session_id}", headers=AUTH)
    assert kept.status_code == 200, kept.text
    assert kept.json()["status"] == "failed" and "InaccessibleImage" in str(kept.json())


def group(**changes: object) -> dict:  # type: ignore[type-arg]
    """A container group body as the provider sends it, with `changes` to its properties or container."""
    container = {"name": "bot", "properties": {"image": "vftest.azurecr.io/bot@sha256:" + "0" * 64,
                                               "resources": {"requests": {"cpu": 1.0, "memoryInGB": 2.0}},
                                               "environmentVariables": []}}
    properties: dict = {"osType": "Linux", "restartPolicy": "Never", "containers": [container]}  # type: ignore[type-arg]
    for key, value in changes.items():
        target = container if key == "name" else container["properties"] if key in ("image", "resources") \
            else properties
        if value is None:
            target.pop(key, None)  # type: ignore[attr-defined]
        else:
            target[key] = value  # type: ignore[index]
    return {"location": "westeurope", "properties": properties}


@pytest.mark.parametrize(("changes", "code"), [
    ({"osType": None}, "InvalidOsType"), ({"restartPolicy": "Sometimes"}, "InvalidRestartPolicy"),
    ({"name": "Bot_1"}, "InvalidContainerName"), ({"image": None}, "InvalidContainerImage"),
    ({"resources": {"requests": {"cpu": 1.0}}}, "InvalidContainerResources"),
    ({"resources": {"requests": {"cpu": 101.0, "memoryInGB": 2.0}}}, "StandardCoresQuotaReached"),
])
async def test_the_fake_refuses_a_group_aci_would(fake_aci: FakeArmAci, changes: dict, code: str) -> None:  # type: ignore[type-arg]
    machines = provider(fake_aci)
    try:
        answer = await machines._request("PUT", "/vf-probe", json=group(**changes))
    finally:
        await machines.aclose()
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code and not fake_aci.groups


async def test_the_fake_takes_only_a_published_api_version_and_deletes_through_deleting(fake_aci: FakeArmAci) -> None:
    machines = provider(fake_aci)
    try:
        old = await machines._request("GET", f"{fake_aci.url}{fake_aci.groups_path}?api-version=2017-01-01")
        assert old.status_code == 400 and old.json()["error"]["code"] == "NoRegisteredProviderFound"
        fake_aci.deleting_seconds = 3600.0  # no container process: the group stays Deleting
        assert (await machines._request("PUT", "/vf-probe", json=group())).status_code == 201
        assert (await machines._request("DELETE", "/vf-probe")).status_code == 202
        seen = await machines._get("vf-probe")
        assert seen is not None and seen["properties"]["provisioningState"] == "Deleting"
        again = await machines._request("PUT", "/vf-probe", json=group())
        assert again.status_code == 409  # its name is not free until the delete is done
    finally:
        await machines.aclose()
