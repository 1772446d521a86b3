"""ECS for tests: a moto server, behind a small proxy that adds what moto leaves out.

moto implements RunTask/DescribeTasks/ListTasks/StopTask but ignores RunTask's `clientToken` and
never throttles. The proxy adds both as documented: the same token with the same parameters
returns the original tasks, with other parameters `ConflictException` + `resourceIds`
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/ECS_Idempotency.html); and injected
`ThrottlingException`s / 5xx per action. It also records calls and adds latency, like the others.
moto accepts any signature; the proxy checks every request's as AWS would
(tests/fakes/sigv4_check.py) against the credentials the `moto_ecs` fixture exports. moto runs a
task from a deregistered (INACTIVE) task definition revision; ECS refuses it
(`InvalidParameterException` "TaskDefinition is inactive"), and so does the proxy. A task
definition ECS has never heard of is moto's own `ClientException` "Unable to describe task
definition.", as ECS answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi, Hold
from tests.fakes.sigv4_check import KnownKey, check
from tests.fakes.sts import FakeSts, FakeTaskCredentials, TaskRoleSessions

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
CHANNEL_AUDIENCE = "wss://dispatcher.example/bots/channel"  # the URL the test deployment's bots dial
MOTO_KEYS = {"testing": KnownKey(secret="testing", token="testing")}  # what `moto_ecs` exports


@dataclass
class ActionFailure:
    action: str
    error: str
    status: int
    times: int


@dataclass
class ActionDelay:
    action: str
    seconds: float
    times: int


def action_of(request_headers: dict[str, str]) -> str:
    return request_headers.get("x-amz-target", "").rsplit(".", 1)[-1]


class EcsProxy(FakeApi):
    def __init__(self, moto_url: str, *, keys: Mapping[str, KnownKey] | None = None) -> None:
        super().__init__()
        self.moto_url = moto_url
        self.keys = MOTO_KEYS if keys is None else keys
        self.action_failures: list[ActionFailure] = []
        self.action_delays: list[ActionDelay] = []
        self.action_holds: list[tuple[str, Hold]] = []
        self._tokens: dict[str, tuple[str, bytes]] = {}  # clientToken -> (params digest, response)
        self._token_locks: dict[str, asyncio.Lock] = {}
        # The bots' task role (tests/fakes/sts.py): its credentials endpoint and STS, served by the
        # `fake_ecs` fixture next to the proxy.
        self.task_roles = TaskRoleSessions()
        self.task_credentials = FakeTaskCredentials(self.task_roles)
        self.sts = FakeSts(self.task_roles, region=REGION)

    def routes(self) -> list[Route]:
        return [Route("/", self.forward, methods=["POST"])]

    def fail_action(
        self, action: str, *, error: str = "ThrottlingException", status: int = 400, times: int = 1
    ) -> None:
        self.action_failures.append(ActionFailure(action, error, status, times))

    def delay_action(self, action: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next `times` calls of `action` for `seconds`, then serve them (a slow or
        hanging API that still acts on the call)."""
        self.action_delays.append(ActionDelay(action, seconds, times))

    def reset_knobs(self) -> None:
        super().reset_knobs()
        for _, hold in self.action_holds:
            hold.release()
        self.action_holds.clear()
        self.action_failures.clear()
        self.action_delays.clear()

    def hold_action(self, action: str, *, times: int = 1) -> Hold:
        """Hold the next `times` calls of `action` until `release()`, then serve them."""
        hold = Hold(times=times)
        self.action_holds.append((action, hold))
        return hold

    async def task_identity(self, task_arn: str, *, audience: str = CHANNEL_AUDIENCE, **env: str) -> str | None:
        """What the bot in `task_arn`'s task sends as its identity: bot/identity.py, asking the task's
        own credentials endpoint, presigning for the fake STS and the channel it dials (`env` adds or
        overrides variables)."""
        from bot.identity import MachineIdentity

        bot_env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.task_credentials.full_uri(task_arn),
                   "AWS_REGION": REGION, "AWS_ENDPOINT_URL_STS": self.sts.url, **env}
        return await MachineIdentity("ecs", audience, bot_env).token()

    def requests_for(self, action: str) -> list[dict[str, Any]]:
        return [c.json() for c in self.calls if action_of(c.headers) == action]

    def _injected(self, action: str) -> Response | None:
        for failure in self.action_failures:
            if failure.action == action and failure.times > 0:
                failure.times -= 1
                body = {
                    "__type": failure.error,
                    "message": "Rate exceeded" if "Throttl" in failure.error else "injected",
                }
                return JSONResponse(body, status_code=failure.status, media_type="application/x-amz-json-1.1")
        return None

    async def forward(self, request: Request) -> Response:
        headers = dict(request.headers)
        action = action_of(headers)
        refused = check("POST", request.url.path, headers, await request.body(), keys=self.keys, region=REGION,
                        service="ecs")
        if refused is not None:  # AWS authenticates a request before anything else
            body = {"__type": refused.code, "message": refused.message}
            return JSONResponse(body, status_code=refused.status, media_type="application/x-amz-json-1.1")
        for delay in self.action_delays:
            if delay.action == action and delay.times > 0:
                delay.times -= 1
                await asyncio.sleep(delay.seconds)
                break
        for held_action, hold in self.action_holds:
            if held_action == action and hold.times > 0:
                hold.times -= 1
                hold.caught += 1
                await hold.until_released()
                break
        if injected := self._injected(action):
            return injected
        body = await request.body()
        if action == "ListTasks" and (refused := _list_tasks_refusal(json.loads(body))):
            return refused
        if action == "RunTask" and (refused := _inactive_refusal(json.loads(body))):
            return refused
        if action == "RunTask" and (token := json.loads(body).get("clientToken")):
            # ECS settles a token once: concurrent calls with it (a retry racing a late original)
            # see one outcome. The lock makes the check-then-run below atomic per token.
            async with self._token_locks.setdefault(token, asyncio.Lock()):
                return await self._run(action, request, body)
        return await self._run(action, request, body)

    async def _run(self, action: str, request: Request, body: bytes) -> Response:
        token_key = None
        if action == "RunTask":
            params = json.loads(body)
            token = params.pop("clientToken", None)
            if token:
                digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
                token_key = (params.get("cluster", "default"), token)
                if (seen := self._tokens.get(token_key)) is not None:  # type: ignore[call-overload]
                    if seen[0] == digest:
                        return Response(seen[1], media_type="application/x-amz-json-1.1")
                    arns = [t["taskArn"] for t in json.loads(seen[1])["tasks"]]
                    conflict = {"__type": "ConflictException", "message": "clientToken reused", "resourceIds": arns}
                    return JSONResponse(conflict, status_code=400, media_type="application/x-amz-json-1.1")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with httpx.AsyncClient() as client:
            upstream = await client.post(self.moto_url + "/", content=body, headers=headers)
        if token_key is not None and upstream.status_code == 200:
            self._tokens[token_key] = (digest, upstream.content)  # type: ignore[index]
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/x-amz-json-1.1")


# "When you specify startedBy as the filter, it must be the only filter that you use."
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html); moto does not check.
LIST_TASKS_FILTERS = ("containerInstance", "family", "serviceName", "desiredStatus", "launchType")


def _list_tasks_refusal(params: dict[str, Any]) -> Response | None:
    if "startedBy" not in params:
        return None
    others = [name for name in LIST_TASKS_FILTERS if name in params]
    if not others:
        return None
    message = f"startedBy must be the only filter; also given: {', '.join(others)}"
    body = {"__type": "InvalidParameterException", "message": message}
    return JSONResponse(body, status_code=400, media_type="application/x-amz-json-1.1")


def _inactive_refusal(params: dict[str, Any]) -> Response | None:
    """ECS will not run a new task from a deregistered revision; moto would."""
    from moto.ecs.models import ecs_backends

    name = str(params.get("taskDefinition", "")).rsplit("/", 1)[-1]
    family, _, revision = name.partition(":")
    revisions = ecs_backends[ACCOUNT][REGION].task_definitions.get(family, {})
    if not revision.isdigit() or int(revision) not in revisions or revisions[int(revision)].status != "INACTIVE":
        return None
    body = {"__type": "InvalidParameterException", "message": "TaskDefinition is inactive"}
    return JSONResponse(body, status_code=400, media_type="application/x-amz-json-1.1")


def register_release(endpoint: str, family: str, image: str) -> str:
    """A release's task definition, as a stack registers one (a revision of `family`, running
    `image`); returns its ARN with the revision (what a release's `images` names)."""
    import boto3

    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint)
    registered = ecs.register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024", memory="2048",
        containerDefinitions=[{"name": "bot", "image": image, "essential": True, "memory": 2048}],
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def provision(endpoint: str, *, cluster: str = "voicefleet", family: str = "bot", **credentials: str) -> dict[str, Any]:
    """What the Pulumi stack would have made: a VPC with DNS hostnames, a subnet, a security
    group, a cluster and the bot task definition. Returns the ECS_* environment for it.
    `credentials` (boto3's aws_access_key_id, …): another account's, e.g. a role assumed there."""
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint, **credentials)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="bot", Description="bot egress", VpcId=vpc)["GroupId"]
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint, **credentials)
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[
            {"name": "bot", "image": "bot:test", "essential": True, "memory": 2048, "command": ["python", "-m", "bot"]}
        ],
    )
    return {
        "AWS_REGION": REGION,
        "ECS_CLUSTER": cluster,
        "ECS_TASK_DEFINITION": family,
        "ECS_SUBNETS": subnet,
        "ECS_SECURITY_GROUPS": group,
    }


def own_cluster(endpoint: str) -> str:
    """A new cluster in the moto server, for one test's tasks: the server outlives the test (a session's),
    and a cluster that held every earlier test's tasks would make each whole-cluster look (an unknown
    session's status, the admission's recount, the reaper's list) slower with every test."""
    import uuid

    import boto3

    name = f"voicefleet-{uuid.uuid4().hex[:12]}"
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint)
    ecs.create_cluster(clusterName=name, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    return name


def moto_task(cluster: str, arn: str) -> Any:
    """The moto model of a task, for tests that move its state as ECS would."""
    from moto.ecs.models import ecs_backends

    return ecs_backends[ACCOUNT][REGION].tasks[cluster][arn]
