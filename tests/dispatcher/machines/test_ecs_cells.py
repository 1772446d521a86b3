"""ECS launches spread over two AWS accounts (ECS_CELLS), end to end: the dispatcher assumes each
account's role with STS AssumeRole (moto, behind the proxy that checks every signature and
external id: tests/fakes/ecs_cells.py), runs each session's task in its home account, and when
one account throttles RunTask it drains that cell and the launches go to the other; both
throttling is a 503 naming the cells.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.factory import configuration_problems
from dispatcher.machines.base import MachinesError
from dispatcher.machines.ecs.assume_role import AssumedRole
from dispatcher.machines.ecs.cell_reserve import EcsCellWarmMachines
from dispatcher.machines.ecs.cells import EcsCellMachines, session_name
from dispatcher.machines.ecs.credentials import AwsCredentials
from dispatcher.machines.ecs.provider import quota_failure
from dispatcher.machines.ecs.settings import EcsSettings
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.outbound.retry import Backoff
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.ecs import CHANNEL_AUDIENCE, REGION, provision
from tests.fakes.ecs_cells import CellsProxy, bot_task_role
from tests.fakes.server import serve
from tests.support.cells import admin_status, check_cold_cells, homed_in
from tests.support.waiting import until
from voicefleet.status import report

ACCOUNTS = {"a": "111111111111", "b": "222222222222"}
ROLES = {cell: f"arn:aws:iam::{account}:role/voicefleet-cell" for cell, account in ACCOUNTS.items()}
EXTERNAL_ID = "vf-prod-7c1e"
LONG_DRAIN = 30.0


def assumed(moto_url: str, role: str) -> dict[str, str]:
    """boto3 credentials of `role` (what the stack that built the account would hold)."""
    import boto3

    sts = boto3.client("sts", region_name=REGION, endpoint_url=moto_url)
    keys = sts.assume_role(RoleArn=role, RoleSessionName="stack")["Credentials"]
    return {"aws_access_key_id": keys["AccessKeyId"], "aws_secret_access_key": keys["SecretAccessKey"],
            "aws_session_token": keys["SessionToken"]}


@pytest.fixture(scope="module")
def accounts(moto_ecs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each cell's account, built as a stack would: its own network, cluster and task definition."""
    return {cell: provision(moto_ecs["MOTO_URL"], cluster=f"voicefleet-{cell}", **assumed(moto_ecs["MOTO_URL"], role))
            for cell, role in ROLES.items()}


@pytest.fixture
def proxy(moto_ecs: dict[str, str]) -> Iterator[CellsProxy]:
    with serve(CellsProxy(moto_ecs["MOTO_URL"])) as served, serve(served.sts), serve(served.task_credentials):
        served.external_ids[ROLES["b"]] = EXTERNAL_ID
        yield served


def cells_env(proxy: CellsProxy, accounts: dict[str, dict[str, Any]], *,
              external_id: str = EXTERNAL_ID) -> dict[str, str]:
    a = accounts["a"]
    cells = [
        {"name": "a", "role_arn": ROLES["a"], "cluster": a["ECS_CLUSTER"]},
        {"name": "b", "role_arn": ROLES["b"], "external_id": external_id, "cluster": accounts["b"]["ECS_CLUSTER"],
         "subnets": [accounts["b"]["ECS_SUBNETS"]], "security_groups": [accounts["b"]["ECS_SECURITY_GROUPS"]]},
    ]
    # The deployment's own network is cell a's (a cell without its own takes the deployment's).
    return {**a, "AWS_ENDPOINT_URL": proxy.url, "AWS_ENDPOINT_URL_STS": proxy.sts.url, "ECS_CELLS": json.dumps(cells),
            "ECS_RETRY_DEADLINE_SECONDS": "1", "BOT_IDENTITY_AUDIENCE": CHANNEL_AUDIENCE,
            "ECS_BOT_TASK_ROLE_ARNS": ",".join(map(bot_task_role, ACCOUNTS.values()))}  # each account's own


@pytest.fixture
def coordination() -> LocalCoordination:
    """The deployment's store, in this process: what every replica of the test shares."""
    return LocalCoordination()


@pytest.fixture
async def machines(proxy: CellsProxy, accounts: dict[str, dict[str, Any]],
                   coordination: LocalCoordination) -> AsyncIterator[EcsCellMachines]:
    # A throttling cell stays drained 15-30 s here (2 s first in production): what the tests see of a
    # drain does not depend on how fast this host runs them.
    provider = EcsCellMachines(EcsSettings.from_env(cells_env(proxy, accounts)), coordination, drain_base=LONG_DRAIN)
    yield provider
    await provider.aclose()


def account_of_task(arn: str) -> str:
    return arn.split(":")[4]


async def test_each_session_runs_in_its_home_account_under_the_assumed_role(
        machines: EcsCellMachines, proxy: CellsProxy) -> None:
    for cell in ("a", "b"):
        [session] = homed_in(machines, cell)
        launched = await machines.launch(spec(session))
        assert launched.created and account_of_task(launched.machine.machine_id) == ACCOUNTS[cell]
        found = await machines.status(session)
        assert found is not None and found.machine_id == launched.machine.machine_id
        assert {view.name: view.running for view in machines.views()}[cell] == 1
        assert await machines.stop(session) is True
        assert {view.name: view.running for view in machines.views()}[cell] == 0
    assert proxy.run_task_accounts == [ACCOUNTS["a"], ACCOUNTS["b"]]
    # One AssumeRole per cell (the keys are kept), named for the dispatcher, with b's external id.
    forms = {form["RoleArn"]: form for form in proxy.assumed}
    assert set(forms) == set(ROLES.values()) and len(proxy.assumed) == 2
    assert forms[ROLES["b"]]["ExternalId"] == EXTERNAL_ID and "ExternalId" not in forms[ROLES["a"]]
    assert {form["RoleSessionName"] for form in proxy.assumed} == {session_name()}


async def test_a_throttling_account_is_drained_and_its_launches_go_to_the_other(
        machines: EcsCellMachines, proxy: CellsProxy, accounts: dict[str, dict[str, Any]],
        coordination: LocalCoordination) -> None:
    proxy.throttle_account(ACCOUNTS["a"])
    first, second = homed_in(machines, "a", 2)
    first_launch = launched = await machines.launch(spec(first))
    assert account_of_task(launched.machine.machine_id) == ACCOUNTS["b"]
    views = {view.name: view for view in machines.views()}
    assert views["a"].drained_until is not None and "ThrottlingException" in str(views["a"].reason)
    assert views["b"].drained_until is None and views["b"].running == 1
    # While a is drained its sessions go straight to b: no RunTask is sent to a at all.
    calls_to_a = proxy.requests_for("RunTask")
    launched = await machines.launch(spec(second))
    assert account_of_task(launched.machine.machine_id) == ACCOUNTS["b"]
    assert len(proxy.requests_for("RunTask")) == len(calls_to_a) + 1
    # A replay of the first session at another replica, once a answers again, meets its task in b: no
    # second task in a, its home.
    proxy.throttled_accounts.clear()
    other = EcsCellMachines(EcsSettings.from_env(cells_env(proxy, accounts)), coordination)
    try:
        runs = len(proxy.run_task_accounts)
        again = await other.launch(spec(first))
        assert (again.created, again.machine.machine_id) == (False, first_launch.machine.machine_id)
        assert proxy.run_task_accounts[runs:] == [ACCOUNTS["b"]]  # asked in b (ConflictException: the replay)
        assert (await other.stop(first)) is True
    finally:
        await other.aclose()


async def test_every_account_throttling_is_a_503_naming_the_cells(machines: EcsCellMachines, proxy: CellsProxy) -> None:
    proxy.throttle_account(ACCOUNTS["a"])
    proxy.throttle_account(ACCOUNTS["b"])
    [session] = homed_in(machines, "b")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "ecs_cells_drained"
    answer = as_api_error(refused.value)
    assert answer.status == 503 and answer.retry_after is not None and answer.retry_after >= 1
    assert re.fullmatch(r"every ecs cell is drained: a for \d+s \(ThrottlingException\); "
                        r"b for \d+s \(ThrottlingException\)", answer.message), answer.message
    assert proxy.run_task_accounts == []


async def test_a_role_that_refuses_the_dispatcher_drains_its_cell(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    provider = EcsCellMachines(EcsSettings.from_env(cells_env(proxy, accounts, external_id="wrong-id")),
                               LocalCoordination(), drain_base=LONG_DRAIN)
    try:
        first, second = homed_in(provider, "b", 2)
        launched = await provider.launch(spec(first))  # b's role refuses: the start goes on to a
        assert account_of_task(launched.machine.machine_id) == ACCOUNTS["a"] and launched.created
        views = {view.name: view for view in provider.views()}
        assert views["b"].drained_until is not None and "role or permissions were refused" in str(views["b"].reason)
        assert any(form.get("ExternalId") == "wrong-id" for form in proxy.assumed)
        assumed = len(proxy.assumed)
        launched = await provider.launch(spec(second))  # meanwhile b is not asked again
        assert account_of_task(launched.machine.machine_id) == ACCOUNTS["a"] and len(proxy.assumed) == assumed
        # Only a is left for it: a throttling too is a 503 whose message names b's reason, not AWS's words.
        proxy.throttle_account(ACCOUNTS["a"])
        with pytest.raises(MachinesError) as refused:
            await provider.launch(spec(homed_in(provider, "a")[0]))
        message = as_api_error(refused.value).message
        assert "role or permissions were refused" in message and "arn:" not in message and "1111" not in message
    finally:
        await provider.aclose()


ROLE = '"role_arn": "arn:aws:iam::111111111111:role/x"'


@pytest.mark.parametrize(("cells", "said"), [
    ("not json", "ECS_CELLS is not JSON"),
    ("[]", "non-empty JSON list"),
    ('[{"name": "a"}]', "role_arn must be an IAM role ARN"),
    ('[{"name": "A", "role_arn": "arn:aws:iam::111111111111:role/x"}]', "name must be"),
    ('[{"name": "a", ' + ROLE + ', "region": "us-east-1"}]', "unknown field 'region'"),
    ('[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/x"},'
     ' {"name": "a", "role_arn": "arn:aws:iam::222222222222:role/x"}]', "names a cell twice: a"),
    ('[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/x", "max_tasks": 0}]', "max_tasks"),
    ('[{"name": "a", ' + ROLE + ', "subnets": "subnet-1"}]', "subnets must be a list"),
    (json.dumps([{"name": f"c{i}", "role_arn": f"arn:aws:iam::{i:012d}:role/r"} for i in range(51)]), "at most 50"),
    ('[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/\u00fcn\u00ef"}]', "role_arn must be"),
    ('[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/a path/x"}]', "role_arn must be"),
    ('[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/p\u00e4th/x"}]', "role_arn must be"),
    ('[{"name": "a", ' + ROLE + ', "external_id": "\u00efd-\u00fc"}]', "external_id must be"),
    ('[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/x"},'
     ' {"name": "b", "role_arn": "arn:aws:iam::111111111111:role/y"}]', "names an account twice: 111111111111"),
    ('[{"name": "a", ' + ROLE + ', "task_definitions": ["bot:1"]}]', "task_definitions must map"),
])
def test_a_wrong_cell_list_is_refused_with_the_way_forward(cells: str, said: str) -> None:
    env = {"AWS_REGION": REGION, "ECS_CLUSTER": "c", "ECS_TASK_DEFINITION": "bot", "ECS_SUBNETS": "subnet-1",
           "ECS_SECURITY_GROUPS": "sg-1", "ECS_CELLS": cells}
    with pytest.raises(SettingsError, match=said):
        EcsSettings.from_env(env)


def test_a_role_path_may_hold_what_iam_allows() -> None:
    env = {"AWS_REGION": REGION, "ECS_CLUSTER": "c", "ECS_TASK_DEFINITION": "bot", "ECS_SUBNETS": "subnet-1",
           "ECS_SECURITY_GROUPS": "sg-1",
           "ECS_CELLS": '[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/team_1/v!f~/cell+a"}]'}
    assert EcsSettings.from_env(env).cells[0].account == "111111111111"


def test_the_dispatchers_sts_session_name_is_ascii_as_sts_asks() -> None:
    assert session_name("h\u00f6st-\u00fc") == "voicefleet-dispatcher-h-st--"


async def test_assumed_keys_are_kept_then_refreshed_before_they_expire(proxy: CellsProxy,
                                                                      accounts: dict[str, dict[str, Any]]) -> None:
    now = [time.time()]
    role = AssumedRole(role_arn=ROLES["a"], session_name="t", external_id=None, endpoint=proxy.url, region=REGION,
                       source=AwsCredentials(), timeout=5.0, connect_timeout=2.0, backoff=Backoff(attempts=2),
                       clock=lambda: now[0])
    try:
        first = await role.keys()
        assert [await role.keys() for _ in range(3)] == [first] * 3 and len(proxy.assumed) == 1
        now[0] += 3600 - 14 * 60  # the last 15 minutes: these keys still, a fresh pair fetched meanwhile
        assert await role.keys() == first
        refresh = role._refreshing
        await until(lambda: refresh is not None and refresh.done(), "a refresh in the background")
        now[0] = time.time()  # the fresh pair has its hour ahead
        second = await role.keys()
        assert second != first and len(proxy.assumed) == 2
        now[0] += 3600 - 9 * 60  # the second pair's last 10 minutes: a call waits for a third
        third = await role.keys()
        assert third not in (first, second) and len(proxy.assumed) == 3
    finally:
        await role.aclose()


async def test_the_status_shows_each_cell_its_launches_running_count_and_drain(
        machines: EcsCellMachines, proxy: CellsProxy) -> None:
    # Out of capacity: RunTask's own hint holds a drained for 10 s, past this test's slowest start-up.
    proxy.full_accounts[ACCOUNTS["a"]] = "RESOURCE:ENI"
    for session in homed_in(machines, "a", 2):
        await machines.launch(spec(session))
    in_b = sum(m.state.is_active for m in await machines.list() if account_of_task(m.machine_id) == ACCOUNTS["b"])
    body = await admin_status(machines)
    cells = {cell["name"]: cell for cell in body["cells"]}
    assert cells["a"]["drained_until"] > time.time() and cells["a"]["reason"] == "RunTask placed no task: RESOURCE:ENI"
    assert (cells["b"]["running"], cells["b"]["launches_per_second"], cells["b"]["drained_until"]) == (in_b, 0.2, None)
    assert in_b >= 2
    shown = report(body)
    assert "CELLS" in shown and "drained until" in shown and "RESOURCE:ENI" in shown


@pytest.mark.parametrize(("reason", "quota"), [
    ("RESOURCE:ENI", True), ("RESOURCE:CPU", True), ("RESOURCE:MEMORY", True),
    ("Capacity is unavailable at this time. Please try again later or in a different availability zone", True),
    ("You've reached the limit on the number of tasks you can run concurrently", True),
    ("You've reached the limit on the number of vCPUs you can run concurrently", True),
    ("MISSING", False), ("ATTRIBUTE", False), ("AGENT", False), ("None", False),
])
def test_which_runtask_failures_drain_a_cell(reason: str, quota: bool) -> None:
    assert quota_failure(reason) is quota


async def test_an_account_out_of_capacity_is_drained_like_a_throttling_one(
        machines: EcsCellMachines, proxy: CellsProxy) -> None:
    proxy.full_accounts[ACCOUNTS["b"]] = "Capacity is unavailable at this time. Please try again later"
    [session] = homed_in(machines, "b")
    launched = await machines.launch(spec(session))
    assert account_of_task(launched.machine.machine_id) == ACCOUNTS["a"]
    views = {view.name: view for view in machines.views()}
    assert views["b"].reason == "RunTask placed no task: CAPACITY_UNAVAILABLE"  # our code, never AWS's sentence
    assert views["b"].drained_until is not None and views["b"].drained_until >= time.time() + 9  # RunTask's 10 s hint


async def test_a_bot_in_any_account_proves_its_task_and_only_its_own(machines: EcsCellMachines,
                                                                     proxy: CellsProxy) -> None:
    launched = {}
    for cell in ("a", "b"):
        [session] = homed_in(machines, cell)
        launched[session] = (await machines.launch(spec(session))).machine.machine_id
    for session, arn in launched.items():
        identity = await proxy.task_identity(arn)  # its task role's presign, as bot/identity.py makes it
        grant = BotGrant("session", session, int(time.time()) + 60)
        assert await machines.identity.refusal(grant, Hello(machine_id=arn, identity=identity)) is None
    (one, arn_one), (other, _) = launched.items()
    identity = await proxy.task_identity(arn_one)
    refused = await machines.identity.refusal(BotGrant("session", other, int(time.time()) + 60),
                                              Hello(machine_id=arn_one, identity=identity))
    assert refused is not None and f"not session {other}" in refused


async def test_ecs_mode_with_cells_builds_the_cells_and_a_bad_list_is_named_by_the_config_check(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    env = cells_env(proxy, accounts)
    await check_cold_cells("ecs", EcsCellMachines, env)  # no channel: every start cold
    # With a channel the reserve runs over the cells (test_ecs_cell_reserve.py).
    await check_cold_cells("ecs", EcsCellWarmMachines, {**env, "BOT_CHANNEL_URL": CHANNEL_AUDIENCE}, warm=True)
    problems = configuration_problems({**env, "MACHINES": "ecs", "DAILY_API_KEY": "k", "ECS_CELLS": '[{"name": "a"}]'})
    assert any("ECS_CELLS[0] (a): role_arn must be an IAM role ARN" in problem for problem in problems)


async def test_the_last_open_cell_retries_a_throttled_runtask_as_one_account_does(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    env = cells_env(proxy, accounts)
    env["ECS_CELLS"] = json.dumps(json.loads(env["ECS_CELLS"])[:1])  # cell a alone
    provider = EcsCellMachines(EcsSettings.from_env(env), coordination)
    try:
        proxy.fail_action("RunTask", error="ThrottlingException", times=1)  # one throttled answer, then served
        launched = await provider.launch(spec(homed_in(provider, "a")[0]))
        assert launched.created and account_of_task(launched.machine.machine_id) == ACCOUNTS["a"]
        assert [view.drained_until for view in provider.views()] == [None]
    finally:
        await provider.aclose()
