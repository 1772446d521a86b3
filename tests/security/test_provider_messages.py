"""Finding 10: what a provider said stays in the log; callers get a stable reason and a generic
message (AWS error bodies name accounts and roles, and an endpoint echoing the request may hold
the session token)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.settings import Settings, hash_api_key
from tests.security.conftest import KEY_A, MakeDispatcher
from tests.support.threaded_http import serving

LEAKY = ("User: arn:aws:iam::123456789012:assumed-role/vf-dispatcher/task is not authorized to perform "
         "ecs:RunTask on arn:aws:ecs:eu-west-1:123456789012:task-definition/vf-bot; "
         "x-amz-security-token:FQoGZXIvYXdzEBYaDSECRETTOKEN")


async def test_a_providers_message_reaches_the_log_but_never_the_caller(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_dispatcher()

    async def refused(spec: object) -> object:
        raise MachinesError("ecs_unauthorized", LEAKY)

    monkeypatch.setattr(d.state.machines, "launch", refused)
    with caplog.at_level(logging.WARNING):
        answer = await d.client.post("/start", json={"body": {}})

    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "ecs_unauthorized"  # control: the stable reason is kept
    assert "arn:" not in answer.text and "SECRETTOKEN" not in answer.text and "123456789012" not in answer.text
    assert "arn:aws:iam::123456789012" in caplog.text  # the operator still sees why


# The recording store's refusal, as S3 words it for a role without the grant: the same account and
# role a client must never read, in the three places a client could meet it.
STORE_REFUSAL = ("User: arn:aws:sts::123456789012:assumed-role/vf-dispatcher/task is not authorized to perform: "
                 "s3:PutObject on resource: \"arn:aws:s3:::calls/.voicefleet-write-check\" because no "
                 "identity-based policy allows the s3:PutObject action")
ADMIN = "admin-key-0123456789abcdef"


class Refusing(BaseHTTPRequestHandler):
    """S3 refusing every call with 403 AccessDenied, as it does for a role without the grant."""

    def refuse(self) -> None:
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{STORE_REFUSAL}"
                "</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>").encode()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = refuse

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def refusing_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with serving(Refusing) as url:
        yield url


def keyed() -> Settings:
    return Settings(api_key_hashes=frozenset({hash_api_key(KEY_A)}), admin_key_hashes=frozenset({hash_api_key(ADMIN)}),
                    max_concurrent_sessions=50)


def leaks(text: str) -> bool:
    return "123456789012" in text or "arn:" in text or "vf-dispatcher" in text


@pytest.mark.parametrize("required", ["false", "true"])
async def test_a_recording_stores_refusal_reaches_the_log_and_status_but_never_a_client(
    make_dispatcher: MakeDispatcher, refusing_s3: str, required: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        d = await make_dispatcher(keyed(), RECORDING="on", RECORDING_DESTINATION="s3://calls",
                                  RECORDING_REQUIRED=required, AWS_ENDPOINT_URL_S3=refusing_s3, AWS_REGION="us-east-1")
        mine = {"Authorization": f"Bearer {KEY_A}"}
        started = await d.client.post("/start", json={"body": {}}, headers=mine)
        status = (await d.client.get("/status", headers={"Authorization": f"Bearer {ADMIN}"})).json()
    assert "arn:aws:sts::123456789012" in status["recordings"]["error"]  # control: the admin sees the store's words
    assert "arn:aws:sts::123456789012" in caplog.text  # and so does the log
    if required == "true":
        assert started.status_code == 503, started.text
        assert started.json()["error"]["code"] == "recording_unavailable"
        assert not leaks(started.text), started.text
        assert started.json()["error"]["reason"] == "store_access_denied"
        assert "store_access_denied" in started.json()["error"]["message"]
        return
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    timeline = await d.client.get(f"/sessions/{session_id}/timeline", headers=mine)
    skipped = next(e for e in timeline.json()["events"] if e["event"] == "recording_skipped")
    assert not leaks(timeline.text), timeline.text
    assert skipped["code"] == "store_access_denied" and "store_access_denied" in skipped["reason"]
    listed = await d.client.get(f"/sessions/{session_id}/artifacts", headers=mine)
    assert listed.status_code == 503 and listed.json()["error"]["code"] == "store_unavailable", listed.text
    assert listed.json()["error"]["reason"] == "store_access_denied"
    assert not leaks(listed.text), listed.text
    await d.client.delete(f"/sessions/{session_id}", headers=mine)
