"""A cell's keys: the dispatcher assumes the cell account's role with STS AssumeRole.

STS speaks AWS's query protocol (botocore's model: `protocol: query`): `POST /` with the form
`Action=AssumeRole&Version=2011-06-15&RoleArn=…&RoleSessionName=…[&ExternalId=…]`, signed with
SigV4 for `sts` by the dispatcher's own keys (the credential chain, ecs/credentials.py), answered
in XML (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html). Sent over the
dispatcher's aiohttp pool with the ECS calls' signer, not a botocore client. The keys are kept
until the last 15 minutes before they expire, then refreshed in the background while requests
keep signing with them; in the last 10 minutes requests wait for fresh ones (botocore's windows).
Throttling, server errors and lost answers are retried with backoff; a refusal (AccessDenied: the
role's trust policy does not name the dispatcher, or the external id differs) is an `AwsError`.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from dispatcher.machines.ecs.credentials import ADVISORY_SECONDS, MANDATORY_SECONDS, KeySource
from dispatcher.machines.ecs.json_api import SERVER, THROTTLED, AwsError, signing_host
from dispatcher.machines.ecs.sigv4 import AwsKeys, SigV4Signer
from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.outbound.retry import Backoff, Transient, with_retries

STS_VERSION = "2011-06-15"
DURATION_SECONDS = 3600  # AssumeRole's default, and the most role chaining allows
FORM = "application/x-www-form-urlencoded; charset=utf-8"
MAX_ANSWER_BYTES = 16 * 1024  # an AssumeRole answer is ~1.5 KB
_NS = "{*}"  # STS names its namespace; an answer without one reads the same


def _text(element: ElementTree.Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    return (found.text or "").strip() if found is not None else ""


class AssumedRole:
    def __init__(self, *, role_arn: str, session_name: str, external_id: str | None, endpoint: str, region: str,
                 source: KeySource, timeout: float, connect_timeout: float, backoff: Backoff,
                 clock: Callable[[], float] = time.time) -> None:
        """`source`: the dispatcher's own keys, which sign the AssumeRole call."""
        self.role_arn, self.session_name, self.external_id = role_arn, session_name, external_id
        self._endpoint = endpoint.rstrip("/")
        self._host = signing_host(self._endpoint)
        self._signer = SigV4Signer("sts", region)
        self._source, self._backoff, self._clock = source, backoff, clock
        self._client = HttpClient(self._endpoint, timeout=timeout, connect_timeout=connect_timeout, connections=2)
        self._keys: AwsKeys | None = None
        self._expires = 0.0  # epoch seconds
        self._refreshing: asyncio.Task[AwsKeys] | None = None

    async def keys(self) -> AwsKeys:
        """The role's keys to sign with now; raises `AwsError` (refused) or `Transient`."""
        left = self._expires - self._clock()
        if self._keys is not None and left > MANDATORY_SECONDS:
            if left <= ADVISORY_SECONDS:
                self._refresh()  # in the background: these keys are good for 10 more minutes
            return self._keys
        return await asyncio.shield(self._refresh())

    def _refresh(self) -> asyncio.Task[AwsKeys]:
        """One AssumeRole at a time; callers needing keys share it."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._assume())
            self._refreshing.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self._refreshing

    async def _assume(self) -> AwsKeys:
        keys, expires = await with_retries(self._call, self._backoff)
        self._keys, self._expires = keys, expires
        return keys

    async def _call(self) -> tuple[AwsKeys, float]:
        params = {"Action": "AssumeRole", "Version": STS_VERSION, "RoleArn": self.role_arn,
                  "RoleSessionName": self.session_name, "DurationSeconds": str(DURATION_SECONDS)}
        if self.external_id:
            params["ExternalId"] = self.external_id
        body = urlencode(params).encode()
        signed = self._signer.sign(self._host, {"content-type": FORM}, body, await self._source.keys())
        try:
            response = await self._client.request("POST", "/", content=body, headers=signed)
        except HttpError as exc:
            raise Transient(f"AssumeRole: {exc}") from exc
        try:
            answer = ElementTree.fromstring(response.content[:MAX_ANSWER_BYTES])  # noqa: S314 - STS's, bounded
        except ElementTree.ParseError:
            answer = None
        if response.status_code >= 300:
            error = answer.find(f"{_NS}Error") if answer is not None else None
            code = _text(error, f"{_NS}Code") or str(response.status_code)
            if code in THROTTLED or response.status_code == 429:
                raise Transient(f"AssumeRole: {code}", status=429)
            if code in SERVER or response.status_code >= 500:
                raise Transient(f"AssumeRole: {code}", status=503)
            raise AwsError("AssumeRole", code, _text(error, f"{_NS}Message")[:300], response.status_code, {})
        found = answer.find(f"{_NS}AssumeRoleResult/{_NS}Credentials") if answer is not None else None
        keys = AwsKeys(_text(found, f"{_NS}AccessKeyId"), _text(found, f"{_NS}SecretAccessKey"),
                       _text(found, f"{_NS}SessionToken"))
        try:
            expires = datetime.fromisoformat(_text(found, f"{_NS}Expiration").replace("Z", "+00:00")).timestamp()
        except ValueError:
            expires = 0.0
        if not (keys.access_key and keys.secret_key and keys.token and expires):
            raise Transient("AssumeRole: an answer without credentials")  # a proxy's page, a cut-off body
        return keys, expires

    async def aclose(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        await self._client.aclose()
