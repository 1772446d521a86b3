"""SigV4 signing (dispatcher/machines/ecs/sigv4.py) against botocore's own, the fakes' check of it, and
the credentials cache (dispatcher/machines/ecs/credentials.py): resolved once, refreshed as they expire."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from dispatcher.machines.ecs.credentials import ADVISORY_SECONDS, CHECK_EVERY, AwsCredentials, NoCredentials
from dispatcher.machines.ecs.sigv4 import AwsKeys, SigV4Signer
from dispatcher.outbound.retry import Transient
from tests.fakes.sigv4_check import KnownKey, check

TARGET = {"content-type": "application/x-amz-json-1.1", "x-amz-target": "AmazonEC2ContainerServiceV20141113.RunTask"}
BODY = '{"cluster":"c","overrides":{"containerOverrides":[{"name":"bot","environment":[{"value":"é  x"}]}]}}'.encode()
TEMPORARY = AwsKeys("ASIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzEXAMPLE//token==")
LONG_TERM = AwsKeys("AKIDEXAMPLE", "secret-two", None)


def botocore_headers(
    keys: AwsKeys, url: str, when: datetime, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str] = TARGET
) -> dict[str, str]:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=url, data=BODY, headers=dict(headers))
    botocore.auth.SigV4Auth(Credentials(*keys), "ecs", "eu-west-1").add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@pytest.mark.parametrize(
    ("keys", "url", "host"),
    [
        (TEMPORARY, "https://ecs.eu-west-1.amazonaws.com/", "ecs.eu-west-1.amazonaws.com"),
        (LONG_TERM, "http://127.0.0.1:8123/", "127.0.0.1:8123"),
    ],
)
def test_the_signature_is_botocores_for_the_same_clock_keys_and_request(
    keys: AwsKeys, url: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    when = datetime(2026, 11, 22, 12, 30, 5, tzinfo=UTC)
    ours = SigV4Signer("ecs", "eu-west-1").sign(host, TARGET, BODY, keys, now=when.timestamp())
    theirs = botocore_headers(keys, url, when, monkeypatch)
    assert ours["authorization"] == theirs["authorization"]
    assert {k: v for k, v in ours.items() if k != "host"} == theirs  # botocore leaves Host to its HTTP client


def test_header_values_are_trimmed_as_sigv4_says(monkeypatch: pytest.MonkeyPatch) -> None:
    when = datetime(2026, 11, 22, 12, 30, 5, tzinfo=UTC)
    spaced = {**TARGET, "x-amz-target": "  AmazonEC2ContainerServiceV20141113.RunTask   x "}
    ours = SigV4Signer("ecs", "eu-west-1").sign("h.example", spaced, BODY, LONG_TERM, now=when.timestamp())
    assert ours["authorization"] == botocore_headers(LONG_TERM, "https://h.example/", when, monkeypatch, spaced)[
        "authorization"
    ]


def test_the_signing_key_follows_the_day_and_a_rotated_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """One signer for the dispatcher's life: its cached key must not outlive the day or the secret."""
    signer = SigV4Signer("ecs", "eu-west-1")
    before_midnight = datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC)
    for when, keys in [
        (before_midnight, TEMPORARY),
        (before_midnight + timedelta(seconds=2), TEMPORARY),
        (before_midnight + timedelta(seconds=3), TEMPORARY._replace(secret_key="rotated")),
    ]:
        ours = signer.sign("ecs.eu-west-1.amazonaws.com", TARGET, BODY, keys, now=when.timestamp())
        url = "https://ecs.eu-west-1.amazonaws.com/"
        assert ours["authorization"] == botocore_headers(keys, url, when, monkeypatch)["authorization"]


def _checked(headers: dict[str, str], body: bytes = BODY, now: float | None = None) -> str | None:
    keys = {TEMPORARY.access_key: KnownKey(TEMPORARY.secret_key, TEMPORARY.token)}
    refused = check("POST", "/", headers, body, keys=keys, region="eu-west-1", service="ecs", now=now)
    return None if refused is None else refused.code


def test_the_fakes_check_accepts_a_signed_request_and_refuses_tampering() -> None:
    signed = SigV4Signer("ecs", "eu-west-1").sign("127.0.0.1:9", TARGET, BODY, TEMPORARY)
    assert _checked(signed) is None
    assert _checked(signed, body=BODY + b" ") == "InvalidSignatureException"
    assert _checked({**signed, "x-amz-target": "AmazonEC2ContainerServiceV20141113.StopTask"}) == (
        "InvalidSignatureException"
    )
    assert _checked({**signed, "x-amz-security-token": "other"}) == "UnrecognizedClientException"
    assert _checked({k: v for k, v in signed.items() if k != "authorization"}) == "MissingAuthenticationTokenException"
    assert _checked(signed, now=datetime.now(UTC).timestamp() + 600) == "InvalidSignatureException"
    wrong_region = SigV4Signer("ecs", "us-east-1").sign("127.0.0.1:9", TARGET, BODY, TEMPORARY)
    assert _checked(wrong_region) == "InvalidSignatureException"


# Credentials ------------------------------------------------------------------------------------


class Clock:
    """Both clocks the cache reads: botocore's expiry clock and the cache's own re-check timer."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        self.monotonic = 0.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.monotonic += seconds


class RoleEndpoint:
    """What a task role's credential endpoint hands out: new keys, valid one hour, per fetch."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.fetches, self.failing, self.resolved = clock, 0, False, 0
        self.valid_for = timedelta(hours=1)
        self.gate = threading.Event()
        self.gate.set()
        self.source: Any = None

    def fetch(self) -> dict[str, Any]:
        self.gate.wait(timeout=30)
        if self.failing:
            raise OSError("credential endpoint unreachable")
        self.fetches += 1
        expiry = self.clock.now + self.valid_for
        return {"access_key": f"ASIA{self.fetches}", "secret_key": f"s{self.fetches}", "token": f"t{self.fetches}",
                "expiry_time": expiry.isoformat()}


def role_credentials(clock: Clock) -> tuple[AwsCredentials, RoleEndpoint]:
    role = RoleEndpoint(clock)
    first = role.fetch()
    source = RefreshableCredentials(first["access_key"], first["secret_key"], first["token"],
                                    clock.now + timedelta(hours=1), role.fetch, "container-role",
                                    time_fetcher=lambda: clock.now)

    def resolve() -> RefreshableCredentials:  # the chain: walked once, its source refreshes itself
        role.resolved += 1
        return source

    role.source = source

    return AwsCredentials(resolve, clock=lambda: clock.monotonic), role


async def test_static_keys_are_resolved_once() -> None:
    resolved = []

    def resolve() -> Credentials:
        resolved.append(1)
        return Credentials("AKID", "secret")

    credentials = AwsCredentials(resolve)
    keys = [await credentials.keys() for _ in range(3)]
    assert keys == [AwsKeys("AKID", "secret", None)] * 3 and len(resolved) == 1


async def test_keys_that_never_expire_are_never_fetched_again() -> None:
    clock = Clock()
    frozen = []

    class LongTerm(Credentials):  # environment or config-file keys: no expiry
        def get_frozen_credentials(self) -> Any:
            frozen.append(1)
            return super().get_frozen_credentials()

    credentials = AwsCredentials(lambda: LongTerm("AKID", "secret"), clock=lambda: clock.monotonic)
    for _ in range(3):
        assert await credentials.keys() == AwsKeys("AKID", "secret", None)
        clock.advance(3600)
    assert len(frozen) == 1


async def test_no_credentials_at_all_is_said_so() -> None:
    with pytest.raises(NoCredentials):
        await AwsCredentials(lambda: None).keys()


async def test_a_chain_that_fails_is_transient() -> None:
    def resolve() -> None:
        raise OSError("instance metadata timed out")

    with pytest.raises(Transient, match="instance metadata timed out"):
        await AwsCredentials(resolve).keys()


async def test_rotating_keys_refresh_in_the_background_then_before_they_expire() -> None:
    clock = Clock()
    credentials, role = role_credentials(clock)
    assert (await credentials.keys()).access_key == "ASIA1"
    clock.advance(3600 - ADVISORY_SECONDS + 60)  # 14 minutes left: refresh, but do not wait for it
    role.gate.clear()
    assert (await credentials.keys()).access_key == "ASIA1"
    role.gate.set()
    for _ in range(100):  # the refresh runs in a thread: let it land
        if role.fetches == 2:
            break
        await asyncio.sleep(0.05)
    clock.advance(CHECK_EVERY)
    assert (await credentials.keys()).access_key == "ASIA2"
    clock.advance(3600 - 5 * 60)  # 5 minutes left of the new keys: wait for fresh ones
    assert (await credentials.keys()) == AwsKeys("ASIA3", "s3", "t3")
    assert role.resolved == 1


async def test_keys_about_to_expire_are_not_used_when_the_refresh_fails() -> None:
    clock = Clock()
    credentials, role = role_credentials(clock)
    await credentials.keys()
    clock.advance(3600 - 5 * 60)
    role.failing = True
    with pytest.raises(Transient, match="unreachable"):
        await credentials.keys()
    role.failing = False
    assert (await credentials.keys()).access_key == "ASIA2"


async def test_the_windows_are_15_minutes_to_refresh_and_10_to_wait() -> None:
    clock = Clock()
    credentials, role = role_credentials(clock)
    await credentials.keys()
    first_fetch = credentials._refreshing
    role.gate.clear()
    clock.advance(3600 - 15 * 60 - 5)  # 15 min 5 s left: nothing to do yet
    assert (await credentials.keys()).access_key == "ASIA1"
    assert credentials._refreshing is first_fetch  # no refresh was started
    clock.advance(5 * 60)  # 10 min 5 s left: refresh, but these keys still sign
    assert (await credentials.keys()).access_key == "ASIA1"
    role.gate.set()


async def test_botocore_is_asked_about_expiry_at_most_every_few_seconds() -> None:
    clock = Clock()
    credentials, role = role_credentials(clock)
    await credentials.keys()
    asked = []
    ask = role.source.refresh_needed
    role.source.refresh_needed = lambda refresh_in=None: asked.append(refresh_in) or ask(refresh_in)
    for _ in range(3):
        await credentials.keys()
    assert asked == []
    clock.advance(CHECK_EVERY)
    await credentials.keys()
    assert asked
    checks = len(asked)
    await credentials.keys()  # and then not again for another CHECK_EVERY
    assert len(asked) == checks


async def test_a_background_refresh_that_fails_leaves_no_unretrieved_task_error() -> None:
    """botocore raises even in the advisory window when the new keys are already expired; nobody
    awaits that refresh, and its failure must not surface as 'Task exception was never retrieved'."""
    clock = Clock()
    credentials, role = role_credentials(clock)
    await credentials.keys()
    unretrieved: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unretrieved.append(context))
    role.valid_for = timedelta(seconds=-1)
    clock.advance(3600 - 12 * 60)
    assert (await credentials.keys()).access_key == "ASIA1"
    refresh = credentials._refreshing
    assert refresh is not None
    await asyncio.wait({refresh})  # (asking for its exception here would retrieve it)
    refresh.__del__()  # what the garbage collector will do with it: complain if nobody looked
    assert unretrieved == []
