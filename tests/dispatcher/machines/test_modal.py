"""`MACHINES=modal` beyond the contract: Modal's limits as the fake holds them (GPU types, the 24 h
timeout, a concurrency cap, a wrong token), a Sandbox Modal ends under a session, where the session's
values travel, and the warm reserve's idle Sandboxes; the real `modal` client against the fake."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path

import pytest
from grpclib.const import Status

from dispatcher.machines.base import LaunchSpec, MachinesError, MachineState
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.machines.modal.provider import ModalMachines
from dispatcher.machines.modal.reserve import ModalWarmMachines
from dispatcher.machines.modal.settings import DEFAULT_BOT_COMMAND, ModalSettings
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import refused_second_launch
from tests.fakes.modal_server import FakeModal
from tests.images.closure import BOT_DOCKERFILE, entrypoint_command
from tests.support.waiting import until


def spec(max_session_seconds: int = 600, session_id: str | None = None) -> LaunchSpec:
    return LaunchSpec(session_id=session_id or secrets.token_hex(12), body_digest="d" * 32,
                      max_session_seconds=max_session_seconds, body={"persona": "x"},
                      room_url="https://voicefleet-test.daily.co/vf-room", bot_token="bot.jwt.secret")


def provider(fake: FakeModal, **env: str) -> ModalMachines:
    settings = ModalSettings.from_env({**fake.env, "MODAL_RETRY_DEADLINE_SECONDS": "2", **env})
    return ModalMachines(settings, coordination=LocalCoordination())


def test_a_sandbox_runs_the_bot_images_own_entrypoint_by_default() -> None:
    # A Sandbox runs the command it is given, not the image's ENTRYPOINT: the two must stay one.
    assert list(DEFAULT_BOT_COMMAND) == entrypoint_command(BOT_DOCKERFILE)


def test_bot_gpu_is_the_neutral_name_sent_as_modals_type_and_an_unknown_one_is_refused_naming_them() -> None:
    env = {"MODAL_TOKEN_ID": "a", "MODAL_TOKEN_SECRET": "b", "MODAL_APP": "x", "MODAL_BOT_IMAGE": "im-1"}
    with pytest.raises(SettingsError) as caught:
        ModalSettings.from_env({**env, "BOT_GPU": "Z100"})
    message = str(caught.value)
    assert "BOT_GPU='Z100'" in message and "nvidia-l4" in message and "nvidia-h100" in message and "\n" not in message
    assert ModalSettings.from_env({**env, "BOT_GPU": "nvidia-a100-40gb", "BOT_GPU_COUNT": "2"}).gpu == "A100-40GB:2"
    assert ModalSettings.from_env({**env, "BOT_GPU": "nvidia-l4"}).gpu == "L4"


async def test_a_gpu_sandbox_is_created_with_its_gpu_and_found_by_any_replica(fake_modal: FakeModal) -> None:
    machines = provider(fake_modal, BOT_GPU="nvidia-l4")
    replica = provider(fake_modal, BOT_GPU="nvidia-l4")
    try:
        s = spec()
        launched = await machines.launch(s)
        found = await replica.status(s.session_id)
    finally:
        await machines.aclose()
        await replica.aclose()
    [sandbox] = fake_modal.creates
    assert sandbox.gpu == "L4"
    assert "SandboxCreate" in fake_modal.calls  # a GPU Sandbox goes through the V1 create
    assert found is not None and found.machine_id == launched.machine.machine_id


async def test_a_gpu_type_modal_does_not_know_is_refused_by_modal_without_retry(fake_modal: FakeModal) -> None:
    machines = ModalMachines(ModalSettings(token_id=fake_modal.env["MODAL_TOKEN_ID"],
                                           token_secret=fake_modal.env["MODAL_TOKEN_SECRET"], app="voicefleet-bots",
                                           image_id=fake_modal.env["MODAL_BOT_IMAGE"], server_url=fake_modal.url,
                                           gpu="Z100"), coordination=LocalCoordination())
    try:
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert caught.value.reason == "modal_rejected" and caught.value.retry_after is None
    assert fake_modal.calls.count("SandboxCreate") == 1


async def test_a_session_longer_than_a_day_gets_modals_longest_timeout(fake_modal: FakeModal) -> None:
    machines = provider(fake_modal)
    try:
        await machines.launch(spec(max_session_seconds=30 * 3600))
    finally:
        await machines.aclose()
    [sandbox] = fake_modal.creates
    assert sandbox.timeout_secs == 24 * 3600


async def test_a_wrong_token_is_unauthorized_and_not_retried(fake_modal: FakeModal) -> None:
    machines = provider(fake_modal, MODAL_TOKEN_SECRET="as-wrong")
    try:
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert caught.value.reason == "modal_unauthorized" and caught.value.retry_after is None
    assert fake_modal.creates == []


async def test_at_the_concurrency_cap_a_start_is_throttled_with_a_retry_hint_after_bounded_tries() -> None:
    fake = FakeModal(max_running=1).start()
    try:
        refused = await refused_second_launch(provider(fake), spec)
    finally:
        fake.close()
    assert refused.reason == "modal_throttled" and refused.retry_after is not None
    assert 2 <= len(fake.create_calls) - 1 <= 5  # retried with backoff, then given up
    assert len(fake.running()) == 1


async def test_a_throttle_with_modals_retry_hint_is_waited_out_by_the_dispatcher_and_nothing_is_sent_after_it(
    fake_modal: FakeModal,
) -> None:
    # Left to the client, a hinted throttle is sent again inside the call, with no limit, and may still
    # be sent after the dispatcher gave up: a Sandbox for a refused start. Here every try is one create.
    hint = 0.3
    fake_modal.fail("SandboxCreate", Status.RESOURCE_EXHAUSTED, times=1000, retry_after=hint)
    machines = provider(fake_modal, MODAL_TIMEOUT_SECONDS="1")
    s = spec()
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(s)
        sent = len(fake_modal.create_calls)
        fake_modal.reset_knobs()  # Modal has room again
        await asyncio.sleep(5 * hint)  # several hints: what a create still pending in the client would wait
    finally:
        await machines.aclose()
    assert refused.value.reason == "modal_throttled" and (refused.value.retry_after or 0) >= hint
    assert 2 <= sent <= 5  # the dispatcher's own bounded tries, each waiting at least the hint
    assert len(fake_modal.create_calls) == sent and fake_modal.creates == []


async def test_a_create_that_got_no_answer_then_throttles_is_maybe_made_and_its_late_sandbox_removed(
    fake_modal: FakeModal,
) -> None:
    # The first try is held (no answer within the call's timeout), the next ones throttled: the held
    # create may still land, so the refusal is not "throttled, nothing made" but reconciled as lost.
    hold = fake_modal.hold_creates(1)
    machines = provider(fake_modal, MODAL_TIMEOUT_SECONDS="0.5")
    lost: LostCreates = machines.lost
    lost.look_pauses, lost.watch_pauses = (0.05,), (0.1,) * 100
    s = spec()
    try:
        launching = asyncio.create_task(machines.launch(s))
        await until(lambda: hold.caught == 1, "the first create held")
        fake_modal.fail("SandboxCreate", Status.RESOURCE_EXHAUSTED, times=1000, retry_after=0.2)
        with pytest.raises(MachinesError) as refused:
            await launching
        assert refused.value.reason == "modal_unavailable" and "no answer" in str(refused.value)
        fake_modal.reset_knobs()  # the held create is served: its Sandbox lands after the refusal
        await until(lambda: len(fake_modal.creates) == 1, "the late Sandbox")
        await until(lambda: all(box.finished for box in fake_modal.creates), "the late Sandbox removed")
    finally:
        await machines.aclose()


async def test_a_sandbox_modal_ends_mid_session_is_failed_and_one_the_dispatcher_stops_ended(
    fake_modal: FakeModal,
) -> None:
    machines = provider(fake_modal)
    lost, stopped = spec(), spec()
    try:
        await machines.launch(lost)
        await machines.launch(stopped)
        fake_modal.terminate(fake_modal.by_name(f"vf-{lost.session_id}"))  # a lost host, out of memory
        assert await machines.stop(stopped.session_id) is True
        lost_machine = await machines.status(lost.session_id)
        stopped_machine = await machines.status(stopped.session_id)
    finally:
        await machines.aclose()
    assert lost_machine is not None and lost_machine.state is MachineState.FAILED
    assert lost_machine.detail == "terminated by Modal (exit code 137)"
    assert stopped_machine is not None and stopped_machine.state is MachineState.ENDED


async def test_the_session_values_are_in_the_sandboxs_secret_never_its_command_or_tags(fake_modal: FakeModal) -> None:
    machines = provider(fake_modal)
    s = spec()
    try:
        await machines.launch(s)
    finally:
        await machines.aclose()
    [sandbox] = fake_modal.creates
    assert sandbox.args == ["python", "-I", "-u", "-B", "-m", "bot"]
    assert sandbox.env["DAILY_TOKEN"] == "bot.jwt.secret"  # control: it went in the Secret
    assert "bot.jwt.secret" not in " ".join(sandbox.args) + repr(sandbox.tags)


async def test_a_reserve_sandbox_is_listed_idle_then_claimed_for_a_session_and_found_by_it(
    fake_modal: FakeModal,
) -> None:
    settings = ModalSettings.from_env(fake_modal.env)
    warm = ModalWarmMachines(settings, coordination=LocalCoordination(), channel_url="ws://127.0.0.1:9/bots",
                             max_idle_seconds=600, max_session_seconds=600)
    replica = provider(fake_modal)
    s = spec()
    try:
        await warm.launch_idle("bot-1", channel_token="idle-credential")
        idle = [m.bot_id for m in await warm.idle_machines()]
        claimed = await warm.adopt("bot-1", s)
        found = await replica.status(s.session_id)
        idle_after = await warm.idle_machines()
        with pytest.raises(MachinesError) as taken:
            await warm.adopt("bot-1", spec())
    finally:
        await warm.aclose()
        await replica.aclose()
    [sandbox] = fake_modal.creates
    assert idle == ["bot-1"] and idle_after == []
    assert sandbox.env["BOT_CHANNEL_TOKEN"] == "idle-credential"
    assert sandbox.env["BOT_CHANNEL_URL"] == "ws://127.0.0.1:9/bots"
    assert sandbox.timeout_secs == 600 + 600 + settings.grace_seconds
    assert claimed.claimed and claimed.machine.session_id == s.session_id
    assert found is not None and found.machine_id == sandbox.id and found.body_digest == s.body_digest
    assert taken.value.reason == "reserve_bot_taken"


async def test_a_sandboxs_bot_sees_its_image_its_secret_and_modals_own_variables_and_nothing_of_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEFLEET_TEST_ONLY", "the test process's own")  # no Sandbox inherits it
    seen = tmp_path / "env.json"
    dump = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    fake = FakeModal(bot_command=[sys.executable, "-c", dump, str(seen)], image_env={"IMAGE_OWN": "1"}).start()
    machines = provider(fake)
    s = spec()
    try:
        await machines.launch(s)
        env = await until(lambda: seen.exists() and seen.stat().st_size and json.loads(seen.read_text()),
                          "the Sandbox's process ran")
    finally:
        await machines.aclose()
        fake.close()
    assert "VOICEFLEET_TEST_ONLY" not in env
    assert env["IMAGE_OWN"] == "1" and env["VOICEFLEET_SESSION_ID"] == s.session_id  # the image's, the Secret's
    assert env["MODAL_TASK_ID"] == fake.by_name(f"vf-{s.session_id}").task_id and env["MODAL_IMAGE_ID"]
