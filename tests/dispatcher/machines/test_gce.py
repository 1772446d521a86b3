"""What the Compute Engine provider sends to the API, and GCE-specific behaviour."""

from __future__ import annotations

import json

import pytest

from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.gce.auth import GceAuth
from dispatcher.machines.gce.provider import GceMachines, GceSettings, to_machine
from dispatcher.settings import SettingsError
from tests.dispatcher.machines.harness import gce_harness
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.gce import PROJECT, TEMPLATE, FakeGce
from tests.support.unclosed import unclosed_reports


@pytest.fixture
async def gce(fake_gce: FakeGce):  # type: ignore[no-untyped-def]
    provider = gce_harness(fake_gce).make(GCE_GRACE_SECONDS="120")
    yield provider
    await provider.aclose()


async def test_instance_is_made_from_the_template(gce: GceMachines, fake_gce: FakeGce) -> None:
    s = spec()
    await gce.launch(s)
    insert = fake_gce.calls_to("POST", "/instances")[0]
    assert insert.query["sourceInstanceTemplate"] == f"projects/{PROJECT}/global/instanceTemplates/{TEMPLATE}"
    assert insert.json()["name"] == f"vf-{s.session_id}"


async def test_session_values_are_the_metadata_items_the_startup_script_reads(
    gce: GceMachines, fake_gce: FakeGce
) -> None:
    s = spec()
    await gce.launch(s)
    items = {i["key"]: i["value"] for i in fake_gce.calls_to("POST", "/instances")[0].json()["metadata"]["items"]}
    assert items == {
        **fake_gce.template_metadata,  # sent along: a request's metadata may replace the template's
        "session-id": s.session_id,
        "daily-room-url": s.room_url,
        "daily-token": "bot.jwt.secret",
        "bot-body": '{"persona":"tester"}',
        "max-session-seconds": "600",
        "ice-config": "",  # a Daily session: no TURN credentials
        "bot-transport": "",  # not a call: the image's own default stands
        "bot-channel-token": "",  # no channel in this deployment (else: this VM's own credential)
        "bot-identity": "",  # no channel, no hello: nothing for the bot to prove (else: gce)
    }
    assert all("bot.jwt.secret" not in c.path + str(c.query) for c in fake_gce.calls)


async def test_the_vm_deletes_itself_after_the_max_session_plus_grace(gce: GceMachines, fake_gce: FakeGce) -> None:
    await gce.launch(spec())
    scheduling = fake_gce.calls_to("POST", "/instances")[0].json()["scheduling"]
    assert scheduling == {"maxRunDuration": {"seconds": "720"}, "instanceTerminationAction": "DELETE",
                          "automaticRestart": False, "onHostMaintenance": "MIGRATE", "provisioningModel": "STANDARD"}


async def test_labels_carry_the_session_and_body_digest(gce: GceMachines, fake_gce: FakeGce) -> None:
    s = spec()
    await gce.launch(s)
    labels = fake_gce.calls_to("POST", "/instances")[0].json()["labels"]
    assert labels == {**fake_gce.template_labels, "voicefleet-session": s.session_id, "voicefleet-body": s.body_digest,
                      "voicefleet-release": "default"}


async def test_retries_of_one_insert_share_one_request_id(gce: GceMachines, fake_gce: FakeGce) -> None:
    fake_gce.fail(503, times=1, method="POST", path_contains="/instances")
    result = await gce.launch(spec())
    ids = {c.query["requestId"] for c in fake_gce.calls_to("POST", "/instances")}
    assert result.created is True and len(ids) == 1


async def test_an_insert_refused_after_acceptance_is_a_failed_session(gce: GceMachines, fake_gce: FakeGce) -> None:
    fake_gce.insert_error = "ZONE_RESOURCE_POOL_EXHAUSTED"
    s = spec()
    launched = await gce.launch(s)  # accepted: the operation fails later, as on the real API
    assert launched.created and launched.machine.state is MachineState.STARTING
    machine = await gce.wait_started(s.session_id, timeout=30)
    assert machine.state is MachineState.FAILED
    assert machine.detail == "ZONE_RESOURCE_POOL_EXHAUSTED"
    again = await gce.status(s.session_id)
    assert again is not None and (again.state, again.detail) == (machine.state, machine.detail)


async def test_list_follows_pages(gce: GceMachines, fake_gce: FakeGce) -> None:
    launched = {(await gce.launch(spec())).machine.session_id for _ in range(5)}
    fake_gce.max_page_size = 2  # five instances on three pages
    assert {m.session_id for m in await gce.list()} == launched
    pages = [c.query.get("pageToken") for c in fake_gce.calls_to("GET", "/instances") if "filter" in c.query]
    assert pages == [None, "2", "4"]


def test_anonymous_mode_is_refused_against_the_real_api() -> None:
    env = {"GCE_PROJECT": "p", "GCE_ZONE": "z", "GCE_INSTANCE_TEMPLATE": "t", "GCE_AUTH": "none"}
    with pytest.raises(SettingsError, match="GCE_AUTH"):
        GceSettings.from_env(env)


def test_instance_prefix_must_start_with_a_letter() -> None:
    env = {"GCE_PROJECT": "p", "GCE_ZONE": "z", "GCE_INSTANCE_TEMPLATE": "t", "GCE_INSTANCE_PREFIX": "9x"}
    with pytest.raises(SettingsError, match="GCE_INSTANCE_PREFIX"):
        GceSettings.from_env(env)


def test_settings_name_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="GCE_INSTANCE_TEMPLATE"):
        GceSettings.from_env({"GCE_PROJECT": "p", "GCE_ZONE": "z"})


async def test_the_bot_token_is_only_in_its_metadata_item(gce: GceMachines, fake_gce: FakeGce) -> None:
    """Not in the description, a label, the name: those show in the console and audit logs."""
    await gce.launch(spec())
    body = fake_gce.calls_to("POST", "/instances")[0].json()
    items = body["metadata"].pop("items")
    assert [i["key"] for i in items if "bot.jwt.secret" in i["value"]] == ["daily-token"]
    assert "bot.jwt.secret" not in json.dumps(body)


async def test_list_skips_instances_that_only_look_like_sessions(gce: GceMachines, fake_gce: FakeGce) -> None:
    s = spec()
    await gce.launch(s)
    labels = {"voicefleet-session": "x"}  # labelled, but not named by this deployment's prefix
    for name in ("other-0123456789abcdef01234567", "vf-0123456789abcdef0123456", "vf-not-a-session-id-at-all"):
        fake_gce.instances[name] = {**fake_gce.instances[f"vf-{s.session_id}"], "name": name, "labels": labels}
    assert [m.session_id for m in await gce.list()] == [s.session_id]


@pytest.mark.parametrize(
    ("status", "state"),
    [("PROVISIONING", MachineState.STARTING), ("STAGING", MachineState.STARTING), ("RUNNING", MachineState.STARTED),
     ("REPAIRING", MachineState.STARTED), ("STOPPING", MachineState.ENDED), ("TERMINATED", MachineState.ENDED)],
)
def test_instance_statuses_map_to_session_states(status: str, state: MachineState) -> None:
    raw = {"name": "vf-x", "status": status, "labels": {"voicefleet-session": "x"}, "creationTimestamp": "bad"}
    assert to_machine(raw).state is state


@pytest.mark.parametrize(
    ("reason", "code", "retry_after"),
    [("ZONE_RESOURCE_POOL_EXHAUSTED", "gce_capacity", 30.0), ("quotaExceeded", "gce_capacity", 30.0),
     ("invalid", "gce_rejected", None),
     ("rateLimitExceeded", "gce_throttled", 60.0)],  # a rate quota (403): it refills within the minute
)
async def test_no_capacity_or_quota_is_worth_a_retry_later(
    gce: GceMachines, fake_gce: FakeGce, reason: str, code: str, retry_after: float | None
) -> None:
    status = 403 if reason in ("quotaExceeded", "rateLimitExceeded") else 400
    fake_gce.fail(status, method="POST", path_suffix="/instances",
                  body={"error": {"code": 400, "message": "no", "errors": [{"reason": reason}]}})
    with pytest.raises(MachinesError) as caught:
        await gce.launch(spec())
    assert (caught.value.reason, caught.value.retry_after) == (code, retry_after)


async def test_the_vm_keeps_the_templates_startup_script_and_labels_even_if_a_request_replaces_them(
    gce: GceMachines, fake_gce: FakeGce
) -> None:
    """iac_review.md item 6: the fake replaces a template's metadata/labels with the request's (the
    worst case; the API reference does not say), so the provider sends the template's own along."""
    s = spec()
    await gce.launch(s)
    await gce.launch(spec())  # a second launch reads the template from memory
    vm = fake_gce.instances[gce.instance_name(s.session_id)]
    metadata = {i["key"]: i["value"] for i in vm["metadata"]["items"]}
    assert metadata["startup-script"] == fake_gce.template_metadata["startup-script"]
    assert metadata["bot-image"] == fake_gce.template_metadata["bot-image"]
    assert vm["labels"]["role"] == "bot" and vm["labels"]["voicefleet-session"] == s.session_id
    assert len([c for c in fake_gce.calls if "instanceTemplates" in c.path]) == 1


class FakeCredentials:
    """google.auth.credentials.Credentials as the provider uses it: `valid`, `token`, `refresh(request)`;
    each refresh hands out the next token, as an OAuth token endpoint would."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = iter(tokens)
        self.token: str | None = None
        self.valid = False
        self.refreshes = 0

    def refresh(self, request: object) -> None:
        assert callable(request)  # a google.auth.transport.Request
        self.token, self.valid = next(self._tokens), True
        self.refreshes += 1


@pytest.fixture
def adc(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeCredentials, list[object]]:
    import google.auth

    credentials, scopes = FakeCredentials("ya29.first", "ya29.second"), []

    def default(scopes: list[str] | None = None, **_: object) -> tuple[FakeCredentials, str]:
        asked.append(scopes)
        return credentials, PROJECT

    asked: list[object] = scopes
    monkeypatch.setattr(google.auth, "default", default)
    return credentials, asked


async def test_calls_carry_an_application_default_token_refreshed_when_it_expires(
    fake_gce: FakeGce, adc: tuple[FakeCredentials, list[object]]
) -> None:
    credentials, asked = adc
    fake_gce.bearer_token = "ya29.first"  # the fake now answers 401 authError to any other token
    provider = gce_harness(fake_gce).make(GCE_AUTH="adc")
    try:
        s = spec()
        await provider.launch(s)
        assert (await provider.status(s.session_id)) is not None
        assert asked == [["https://www.googleapis.com/auth/compute"]]  # found once, for the Compute scope
        credentials.valid = False  # the access token expired (they last an hour)
        fake_gce.bearer_token = "ya29.second"
        assert (await provider.status(s.session_id)) is not None
    finally:
        await provider.aclose()
    assert credentials.refreshes == 2 and len(asked) == 1
    assert {c.headers["authorization"] for c in fake_gce.calls} == {"Bearer ya29.first", "Bearer ya29.second"}


async def test_a_regional_template_path_is_used_as_given(fake_gce: FakeGce) -> None:
    regional = f"projects/{PROJECT}/regions/europe-west1/instanceTemplates/{TEMPLATE}"
    fake_gce.template_regions = {"europe-west1"}
    provider = gce_harness(fake_gce).make(GCE_INSTANCE_TEMPLATE=regional)
    try:
        s = spec()
        assert (await provider.launch(s)).created
    finally:
        await provider.aclose()
    assert fake_gce.calls_to("POST", "/instances")[0].query["sourceInstanceTemplate"] == regional
    assert [c.path for c in fake_gce.calls if "instanceTemplates" in c.path] == [f"/compute/v1/{regional}"]


async def test_closing_the_provider_leaves_no_open_connection_pool(fake_gce: FakeGce) -> None:
    async def use_and_close() -> None:
        provider = gce_harness(fake_gce).make()
        await provider.list()  # opens the pool
        await provider.aclose()

    assert await unclosed_reports(use_and_close) == []


async def test_auth_built_without_arguments_asks_for_application_default_credentials(
    adc: tuple[FakeCredentials, list[object]]
) -> None:
    assert await GceAuth().headers() == {"Authorization": "Bearer ya29.first"}


async def test_an_error_answer_that_is_not_google_s_json_is_still_a_clear_refusal(
    gce: GceMachines, fake_gce: FakeGce
) -> None:
    """A proxy or load balancer in between answers in its own words (HTML, plain text)."""
    for body in ("<html>400 Bad Request</html>", {"error": "not the documented shape"}, ["x"]):
        fake_gce.fail(400, method="POST", path_suffix="/instances", body=body)
        with pytest.raises(MachinesError) as caught:
            await gce.launch(spec())
        assert (caught.value.reason, caught.value.retry_after) == ("gce_rejected", None)


async def test_only_already_exists_means_the_sessions_vm_is_there(gce: GceMachines, fake_gce: FakeGce) -> None:
    """Another 409 (an operation in progress on the resource) is a refusal, even while a VM of the
    session exists: the launch must not be reported as a replay of it."""
    s = spec()
    await gce.launch(s)
    fake_gce.fail(409, method="POST", path_suffix="/instances",
                  body={"error": {"code": 409, "message": "busy", "errors": [{"reason": "resourceNotReady"}]}})
    with pytest.raises(MachinesError) as caught:
        await gce.launch(s)
    assert caught.value.reason == "gce_rejected"
    assert (await gce.launch(s)).created is False  # the real alreadyExists: the replay
