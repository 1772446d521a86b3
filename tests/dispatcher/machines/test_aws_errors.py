"""How ECS's JSON answers become results and provider errors (dispatcher/machines/ecs/json_api.py, provider.py):
each as the boto3 path read them, against a server that answers what each test says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from dispatcher.machines.base import MachinesError
from dispatcher.machines.ecs.credentials import AwsCredentials
from dispatcher.machines.ecs.json_api import AwsError, AwsJsonApi, signing_host
from dispatcher.machines.ecs.provider import EcsMachines, EcsSettings
from dispatcher.outbound.retry import Transient
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import ecs_harness
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.ecs import EcsProxy
from tests.fakes.sigv4_check import KnownKey, check
from tests.support.unclosed import unclosed_reports

KEYS = {"AKIDTEST": KnownKey("secret")}
JSON_TYPE = "application/x-amz-json-1.1"


class Answers:
    """A loopback ECS endpoint: checks the signature, records each call, then answers `next`."""

    def __init__(self) -> None:
        self.next: list[web.Response] = []
        self.received: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = await request.read()
        refused = check("POST", request.path, headers, body, keys=KEYS, region="eu-west-1", service="ecs")
        if refused is not None:
            return web.json_response({"__type": refused.code, "message": refused.message}, status=refused.status)
        self.received.append({"target": headers.get("x-amz-target"), "type": headers.get("content-type"),
                              "body": await request.json()})
        return self.next.pop(0) if self.next else web.json_response({"tasks": []}, content_type=JSON_TYPE)


@pytest.fixture
async def answers() -> AsyncIterator[Answers]:
    answers = Answers()
    app = web.Application()
    app.router.add_post("/", answers.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    answers.url = f"http://127.0.0.1:{port}"
    yield answers
    await runner.cleanup()


def api(answers: Answers, secret: str = "secret") -> AwsJsonApi:
    from botocore.credentials import Credentials

    return AwsJsonApi(service="ecs", target_prefix="AmazonEC2ContainerServiceV20141113", region="eu-west-1",
                      endpoint=answers.url, timeout=5, connect_timeout=5,
                      credentials=AwsCredentials(lambda: Credentials("AKIDTEST", secret)))


async def failure_of(answers: Answers, answer: web.Response | None = None, *, secret: str = "secret") -> Exception:
    """What one RunTask call raised, given the server's `answer` (the default: a task list)."""
    client = api(answers, secret)
    answers.next += [answer] if answer is not None else []
    try:
        await client.call("RunTask", {})
    except (Transient, AwsError) as exc:
        return exc
    finally:
        await client.aclose()
    raise AssertionError("the call succeeded")


def aws_error(status: int, error_type: str, message: str = "m", **extra: Any) -> web.Response:
    return web.json_response({"__type": error_type, "message": message, **extra}, status=status,
                             content_type=JSON_TYPE)


async def test_a_call_is_a_signed_json_post_to_the_operations_target(answers: Answers) -> None:
    client = api(answers)
    task = {"taskArn": "arn:t", "createdAt": 1.7e9}
    answers.next.append(web.json_response({"tasks": [task]}, content_type=JSON_TYPE))
    try:
        result = await client.call("DescribeTasks", {"cluster": "c", "tasks": ["arn:t"], "include": ["TAGS"]})
    finally:
        await client.aclose()
    assert result == {"tasks": [task]}
    assert answers.received == [{"target": "AmazonEC2ContainerServiceV20141113.DescribeTasks", "type": JSON_TYPE,
                                 "body": {"cluster": "c", "tasks": ["arn:t"], "include": ["TAGS"]}}]


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (lambda: aws_error(400, "ThrottlingException", "Rate exceeded"), 429),
        (lambda: aws_error(400, "com.amazonaws.ecs#ThrottlingException"), 429),
        (lambda: aws_error(400, "TooManyRequestsException"), 429),
        (lambda: web.Response(status=429, text=""), 429),
        (lambda: aws_error(500, "ServerException", "Service unavailable"), 503),
        (lambda: aws_error(400, "ServiceUnavailable"), 503),
        (lambda: web.Response(status=502, text="<html><body>Bad Gateway</body></html>"), 503),
        (lambda: web.Response(status=200, text="<html>a proxy's page</html>"), None),
    ],
)
async def test_throttling_server_errors_and_garbled_answers_are_transient(
    answers: Answers, answer: Any, status: int | None
) -> None:
    caught = await failure_of(answers, answer())
    assert isinstance(caught, Transient) and caught.status == status


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (lambda: aws_error(400, "ClientException", "bad"), "ClientException: bad"),
        (lambda: aws_error(400, "InvalidParameterException:http://internal/", "x"), "InvalidParameterException: x"),
        (lambda: web.json_response({"Message": "no"}, status=404), "404: no"),
    ],
)
async def test_refusals_are_aws_errors_named_as_botocore_names_them(answers: Answers, answer: Any, said: str) -> None:
    caught = await failure_of(answers, answer())
    assert isinstance(caught, AwsError) and not caught.unauthorized
    assert f"{caught.code}: {caught.message}" == said and str(caught) == f"RunTask: {said}"


async def test_a_wrong_secret_is_refused_by_the_signature_check(answers: Answers) -> None:
    caught = await failure_of(answers, secret="not-the-secret")
    assert isinstance(caught, AwsError) and caught.code == "InvalidSignatureException" and caught.unauthorized


async def test_no_credentials_at_all_is_an_unauthorized_refusal_without_a_call(answers: Answers) -> None:
    client = AwsJsonApi(service="ecs", target_prefix="AmazonEC2ContainerServiceV20141113", region="eu-west-1",
                        endpoint=answers.url, timeout=5, connect_timeout=5, credentials=AwsCredentials(lambda: None))
    try:
        with pytest.raises(AwsError) as caught:
            await client.call("RunTask", {})
    finally:
        await client.aclose()
    assert caught.value.unauthorized and answers.received == []


# Through the provider: each AWS error type as the reason the dispatcher reports ---------------

@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        ("ThrottlingException", 400, "ecs_throttled"),
        ("ServerException", 500, "ecs_unavailable"),
        ("ClientException", 400, "ecs_rejected"),
        ("InvalidParameterException", 400, "ecs_rejected"),
        ("AccessDeniedException", 400, "ecs_unauthorized"),
        ("ExpiredTokenException", 400, "ecs_unauthorized"),
    ],
)
async def test_each_aws_error_is_the_reason_the_boto3_path_gave(
    fake_ecs: EcsProxy, error: str, status: int, reason: str
) -> None:
    provider = ecs_harness(fake_ecs).make(ECS_RETRY_DEADLINE_SECONDS="30")
    fake_ecs.fail_action("RunTask", error=error, status=status, times=5)  # every attempt
    try:
        with pytest.raises(MachinesError) as caught:
            await provider.launch(spec())
    finally:
        await provider.aclose()
    assert caught.value.reason == reason
    assert (caught.value.retry_after is not None) == (reason in ("ecs_throttled", "ecs_unavailable"))
    refusal = reason in ("ecs_rejected", "ecs_unauthorized")
    assert len(fake_ecs.requests_for("RunTask")) == (1 if refusal else 5)  # refusals are never retried


async def test_keys_the_proxy_does_not_know_are_unauthorized(fake_ecs: EcsProxy) -> None:
    fake_ecs.keys = {"someone-else": KnownKey("x")}
    provider = EcsMachines(EcsSettings.from_env(fake_ecs.env), LocalCoordination())
    try:
        with pytest.raises(MachinesError) as caught:
            await provider.status("s1")
    finally:
        await provider.aclose()
    assert caught.value.reason == "ecs_unauthorized" and "UnrecognizedClientException" in caught.value.message


def test_the_endpoint_is_ecs_own_variable_then_the_global_one() -> None:
    base = {"AWS_REGION": "eu-west-1", "ECS_CLUSTER": "c", "ECS_TASK_DEFINITION": "bot", "ECS_SUBNETS": "s",
            "ECS_SECURITY_GROUPS": "g"}
    assert EcsSettings.from_env(base).endpoint_url is None
    assert EcsMachines(EcsSettings.from_env(base), LocalCoordination())._api.endpoint == "https://ecs.eu-west-1.amazonaws.com"
    both = {**base, "AWS_ENDPOINT_URL": "http://global:1", "AWS_ENDPOINT_URL_ECS": "http://ecs-only:2"}
    assert EcsSettings.from_env(both).endpoint_url == "http://ecs-only:2"
    assert EcsSettings.from_env({**base, "AWS_ENDPOINT_URL": "http://global:1"}).endpoint_url == "http://global:1"


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://ecs.eu-west-1.amazonaws.com", "ecs.eu-west-1.amazonaws.com"),
        ("https://ECS.eu-west-1.amazonaws.com:443/", "ecs.eu-west-1.amazonaws.com"),  # the default port is not signed
        ("http://127.0.0.1:80", "127.0.0.1"),
        ("http://127.0.0.1:443", "127.0.0.1:443"),
        ("https://[::1]:8443", "[::1]:8443"),
    ],
)
def test_the_signed_host_is_botocores(endpoint: str, host: str) -> None:
    assert signing_host(endpoint) == host


@pytest.mark.parametrize("endpoint", ["ftp://ecs.example", "https://ecs.example/prefix", "https://:443", "ecs.example"])
def test_an_endpoint_that_is_not_a_bare_origin_is_a_settings_error(endpoint: str) -> None:
    with pytest.raises(SettingsError, match="no path"):
        signing_host(endpoint)


async def test_closing_the_client_leaves_no_open_connection_pool(answers: Answers) -> None:
    async def use_and_close() -> None:
        client = api(answers)
        await client.call("ListTasks", {})  # opens the pool
        await client.aclose()

    assert await unclosed_reports(use_and_close) == []
