"""ECS over several AWS accounts, for tests: the ECS proxy (tests/fakes/ecs.py) in front of one moto
server, with throttling per account, and one STS (`proxy.sts`) answering the dispatcher's AssumeRole
through moto and the bots' presigned GetCallerIdentity as tests/fakes/sts.py does.

moto answers AssumeRole for a role in any account and files the calls made with the keys it hands
out under that account (moto/iam/models.py, `get_account_id_from`): each account has its own
clusters and tasks, as AWS keeps them. What moto leaves out, the proxy adds as AWS does it:
- every request's signature is checked (tests/fakes/sigv4_check.py): AssumeRole's against the
  dispatcher's own keys, ECS calls' against those keys or keys moto issued for an assumed role
  and not yet expired (anything else: `UnrecognizedClientException`);
- a role whose trust policy asks for an external id refuses AssumeRole without that id, with
  STS's `AccessDenied` (HTTP 403, XML; moto checks no trust policy);
- `throttle_account(account)`: that account's RunTask answers `ThrottlingException` "Rate
  exceeded" (HTTP 400), as ECS's request throttling does
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html);
  `full_accounts[account] = reason`: it places no task, HTTP 200 with `failures[].reason`, as
  RunTask answers a want of capacity or quota; `denied_accounts`: its RunTask answers
  `AccessDeniedException`, as a role without the permission gets; `unreadable_accounts`: its
  ListTasks and DescribeTasks answer `AccessDeniedException` (its role's read permissions taken away);
- a task's role is its own account's (`AccountTaskRoles`): a bot's STS identity names the account
  its task runs in, as it does in AWS.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.ecs import MOTO_KEYS, REGION, EcsProxy, action_of
from tests.fakes.sigv4_check import KnownKey, check
from tests.fakes.sts import FakeSts, FakeTaskCredentials, TaskRoleSessions

XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"


class IssuedKeys(Mapping[str, KnownKey]):
    """The dispatcher's own keys, then the unexpired keys moto issued for assumed roles."""

    def __init__(self, own: Mapping[str, KnownKey]) -> None:
        self.own = own

    def __getitem__(self, access_key: str) -> KnownKey:
        if access_key in self.own:
            return self.own[access_key]
        role = assumed_role_of(access_key)
        if role is None or role.expiration < datetime.datetime.now(datetime.UTC).replace(tzinfo=None):
            raise KeyError(access_key)
        return KnownKey(secret=role.secret_access_key, token=role.session_token)

    def __iter__(self) -> Iterator[str]:
        return iter(self.own)

    def __len__(self) -> int:
        return len(self.own)


def assumed_role_of(access_key: str) -> Any:
    from moto.sts.models import sts_backends

    for account in list(sts_backends.values()):
        for role in list(account["aws"].assumed_roles):
            if role.access_key_id == access_key:
                return role
    return None


def account_of(headers: Mapping[str, str]) -> str:
    """The account a request's keys belong to, as moto files it."""
    from moto.iam.models import get_account_id_from

    access_key = headers.get("authorization", "").split("Credential=", 1)[-1].split("/", 1)[0]
    return str(get_account_id_from(access_key))


def bot_task_role(account: str) -> str:
    """The bots' task role in `account` (each cell's stack makes its own)."""
    return f"arn:aws:iam::{account}:role/voicefleet/bot-task"


class AccountTaskRoles(TaskRoleSessions):
    """Each task's role session is of its own account's bot role (a role is one account's).
    `forged_account`: that account's role instead, as an admin there could assume it with a chosen
    session name (a task id of another account)."""

    forged_account: str | None = None

    def credentials(self, credential_id: str) -> dict[str, str] | None:
        if (task_arn := self.by_credential_id.get(credential_id)) is not None:
            self.role_arn = bot_task_role(self.forged_account or task_arn.split(":")[4])
        return super().credentials(credential_id)


class CellsSts(FakeSts):
    """One STS endpoint, as AWS has: the bots' presigned GetCallerIdentity (FakeSts) and the
    dispatcher's AssumeRole (the proxy's, before moto)."""

    def __init__(self, proxy: CellsProxy) -> None:
        super().__init__(proxy.task_roles, region=REGION)
        self.proxy = proxy

    def routes(self) -> list[Route]:
        return [*super().routes(), Route("/", self.assume, methods=["POST"])]

    async def assume(self, request: Request) -> Response:
        return await self.proxy.assume_role(request)


class CellsProxy(EcsProxy):
    def __init__(self, moto_url: str) -> None:
        super().__init__(moto_url, keys=IssuedKeys(MOTO_KEYS))
        self.account_roles = self.task_roles = AccountTaskRoles()
        self.task_credentials = FakeTaskCredentials(self.task_roles)
        self.sts = CellsSts(self)  # serve it (and `task_credentials`) beside the proxy
        self.external_ids: dict[str, str] = {}  # role ARN → the external id its trust policy asks for
        self.throttled_accounts: set[str] = set()
        self.denied_accounts: set[str] = set()  # accounts whose RunTask answers AccessDeniedException
        self.unreadable_accounts: set[str] = set()  # accounts whose ListTasks and DescribeTasks answer it
        self.full_accounts: dict[str, str] = {}  # account → the failures[].reason its RunTask places no task for
        self.run_task_accounts: list[str] = []  # the account of every RunTask that reached ECS
        self.assumed: list[dict[str, str]] = []  # every AssumeRole's form, as sent

    def routes(self) -> list[Route]:
        return [Route("/", self.either, methods=["POST"])]

    def throttle_account(self, account: str) -> None:
        self.throttled_accounts.add(account)

    async def either(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return await self.assume_role(request)
        action = action_of(dict(request.headers))
        if action in ("ListTasks", "DescribeTasks") and account_of(request.headers) in self.unreadable_accounts \
                and check("POST", "/", dict(request.headers), await request.body(), keys=self.keys, region=REGION,
                          service="ecs") is None:  # signed right, refused: its role may no longer read tasks
            denied = {"__type": "AccessDeniedException", "message": f"not authorized to perform: ecs:{action}"}
            return JSONResponse(denied, status_code=400, media_type="application/x-amz-json-1.1")
        if action_of(dict(request.headers)) == "RunTask":
            account = account_of(request.headers)
            refused = check("POST", "/", dict(request.headers), await request.body(), keys=self.keys, region=REGION,
                            service="ecs")
            if refused is None and account in self.throttled_accounts:
                return JSONResponse({"__type": "ThrottlingException", "message": "Rate exceeded"}, status_code=400,
                                    media_type="application/x-amz-json-1.1")
            if refused is None and account in self.denied_accounts:  # its role's RunTask permission taken away
                return JSONResponse({"__type": "AccessDeniedException", "message": "not authorized to perform: "
                                     "ecs:RunTask"}, status_code=400, media_type="application/x-amz-json-1.1")
            if refused is None and account in self.full_accounts:  # HTTP 200, no task: as RunTask answers it
                failure = {"arn": f"arn:aws:ecs:{REGION}:{account}:container-instance/none",
                           "reason": self.full_accounts[account]}
                return JSONResponse({"tasks": [], "failures": [failure]}, media_type="application/x-amz-json-1.1")
            if refused is None:
                self.run_task_accounts.append(account)
        return await self.forward(request)

    async def assume_role(self, request: Request) -> Response:
        body = await request.body()
        refused = check("POST", "/", dict(request.headers), body, keys=MOTO_KEYS, region=REGION, service="sts")
        if refused is not None:
            return sts_error(refused.status, refused.code, refused.message)
        form = dict(parse_qsl(body.decode()))
        if form.get("Action") != "AssumeRole":
            return sts_error(400, "InvalidAction", f"Could not find operation {form.get('Action')}")
        self.assumed.append(form)
        role = form.get("RoleArn", "")
        if (wanted := self.external_ids.get(role)) is not None and form.get("ExternalId") != wanted:
            return sts_error(403, "AccessDenied", f"User: arn:aws:iam::123456789012:user/dispatcher is not authorized "
                                                  f"to perform: sts:AssumeRole on resource: {role}")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with httpx.AsyncClient() as client:
            upstream = await client.post(self.moto_url + "/", content=body, headers=headers)
        return Response(upstream.content, status_code=upstream.status_code, media_type="text/xml")


def sts_error(status: int, code: str, message: str) -> Response:
    """An error as STS's query API writes one."""
    body = (f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>")
    return Response(body, status_code=status, media_type="text/xml")
