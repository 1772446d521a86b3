"""A task role's credentials and STS, for tests: what an ECS bot proves its task with.

`FakeTaskCredentials` is the ECS agent's task credentials endpoint (`GET /v2/credentials/<id>`,
https://docs.aws.amazon.com/AmazonECS/latest/bestpracticesguide/security-iam-roles.html): each
task the test launches gets a credential id of its own (`issue(task ARN)`, what the agent puts in
the task's `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`), answered with temporary credentials of the
bots' task role. Their session is named by the task id: ECS attaches the task ARN to the task
role's session "so CloudTrail logs show which task is using which role"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html), and CloudTrail
shows such a session as `arn:aws:sts::<account>:assumed-role/<task role>/<task id>`; ECS's API
reference does not state the name, which is the assumption docs/security.md names.

`FakeSts` answers `GET /?Action=GetCallerIdentity&Version=2011-06-15` presigned in its query, as STS
does: the signature is VERIFIED with botocore's own signer (tests/fakes/sigv4_check.py) against the
credentials the endpoint issued (anything else: `InvalidClientTokenId`; an altered request:
`SignatureDoesNotMatch`, HTTP 403), then answers with the caller's ARN, XML as STS's query API
(https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi
from tests.fakes.sigv4_check import KnownKey, check_presigned

ACCOUNT = "123456789012"  # moto's, as the ECS fake's task ARNs name it
BOT_TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/voicefleet/bot-task"
XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class TaskRoleSessions:
    """The task role's sessions: what the credentials endpoint hands out and STS recognises."""

    role_arn: str = BOT_TASK_ROLE
    by_credential_id: dict[str, str] = field(default_factory=dict)  # credential id -> task ARN
    keys: dict[str, KnownKey] = field(default_factory=dict)  # access key id -> its secret and token
    callers: dict[str, str] = field(default_factory=dict)  # access key id -> assumed-role ARN
    # How ECS names the task role's session for a task: by the task id (tests of an account where
    # it were not change it).
    session_name: Callable[[str], str] = lambda task_arn: task_arn.rsplit("/", 1)[-1]

    def issue(self, task_arn: str) -> str:
        """A credential id for `task_arn`'s task (the path after the agent's address)."""
        credential_id = secrets.token_hex(16)
        self.by_credential_id[credential_id] = task_arn
        return f"/v2/credentials/{credential_id}"

    def credentials(self, credential_id: str) -> dict[str, str] | None:
        task_arn = self.by_credential_id.get(credential_id)
        if task_arn is None:
            return None
        access_key, secret, token = "ASIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30), \
            secrets.token_urlsafe(600)  # a session token is long (~1 KB): it travels in the presigned URL
        self.keys[access_key] = KnownKey(secret=secret, token=token)
        account, role_name = self.role_arn.split(":")[4], self.role_arn.rsplit("/", 1)[-1]
        self.callers[access_key] = f"arn:aws:sts::{account}:assumed-role/{role_name}/{self.session_name(task_arn)}"
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600))
        return {"RoleArn": self.role_arn, "AccessKeyId": access_key, "SecretAccessKey": secret, "Token": token,
                "Expiration": expiration}


class FakeTaskCredentials(FakeApi):
    def __init__(self, sessions: TaskRoleSessions) -> None:
        super().__init__()
        self.sessions = sessions

    def routes(self) -> list[Route]:
        return [Route("/v2/credentials/{credential_id}", self.get, methods=["GET"])]

    def full_uri(self, task_arn: str) -> str:
        """`AWS_CONTAINER_CREDENTIALS_FULL_URI` for the task (the agent's address is this server's)."""
        return self.url + self.sessions.issue(task_arn)

    async def get(self, request: Request) -> Response:
        answer = self.sessions.credentials(request.path_params["credential_id"])
        if answer is None:
            return JSONResponse({"code": "InvalidIdentifier", "message": "CredentialId not found"}, status_code=400)
        return JSONResponse(answer)


class FakeSts(FakeApi):
    def __init__(self, sessions: TaskRoleSessions, *, region: str) -> None:
        super().__init__()
        self.sessions, self.region = sessions, region

    def routes(self) -> list[Route]:
        return [Route("/", self.query_api, methods=["GET"])]

    async def query_api(self, request: Request) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        refused = check_presigned("GET", request.url.path, request.url.query, headers, keys=self.sessions.keys,
                                  region=self.region, service="sts")
        if refused is not None:  # STS authenticates a request before reading its action
            return _error(refused.status, refused.code, refused.message)
        params = request.query_params
        if (params.get("Action"), params.get("Version")) != ("GetCallerIdentity", "2011-06-15"):
            return _error(400, "InvalidAction", "Could not find operation for this version")
        access_key = params["X-Amz-Credential"].split("/")[0]
        arn = self.sessions.callers[access_key]
        user_id = f"AROA{ACCOUNT}EXAMPLE:{arn.rsplit('/', 1)[-1]}"
        body = (f'<GetCallerIdentityResponse xmlns="{XMLNS}"><GetCallerIdentityResult>'
                f"<Arn>{escape(arn)}</Arn><UserId>{escape(user_id)}</UserId><Account>{ACCOUNT}</Account>"
                f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId>"
                f"</ResponseMetadata></GetCallerIdentityResponse>")
        return Response(body, media_type="text/xml")


def _error(status: int, code: str, message: str) -> Response:
    body = (f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{secrets.token_hex(16)}</RequestId>"
            f"</ErrorResponse>")
    return Response(body, status_code=status, media_type="text/xml")
