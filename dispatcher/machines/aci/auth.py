"""ARM access tokens for the dispatcher, from the sources azure-identity's DefaultAzureCredential
reads first, with no Azure SDK in the dispatcher's closure (docs/providers.md, "Azure Container
Instances": the SDK was measured and left out).

Picked by the environment, as azure-identity picks them: a service principal (`AZURE_TENANT_ID`,
`AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`: the client-credentials grant at `AZURE_AUTHORITY_HOST`);
else the managed identity of the host: Container Apps and App Service set `IDENTITY_ENDPOINT` and
`IDENTITY_HEADER` (api-version 2019-08-01), anywhere else the instance metadata endpoint
(169.254.169.254, api-version 2018-02-01); `AZURE_CLIENT_ID` then picks a user-assigned identity.
A token is kept until five minutes before it expires; one refresh at a time. Anything with the same
two calls (`ArmTokens`) may stand in: the drain signs in as the operator (stacks/tools/drain_azure.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlencode

from dispatcher.machines.aci.settings import DEFAULT_AUTHORITY_HOST
from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from dispatcher.outbound.retry import Backoff, send

IMDS_TOKEN_URL = "http://169.254.169.254/metadata/identity/oauth2/token"  # noqa: S105 - a URL
EARLY_SECONDS = 300.0


class NoArmToken(MachinesError):
    """The sign-in answered without a token (a refused identity or secret): the identity's failure,
    not ARM's (aci/cells.py drains a cell whose own identity it is)."""


class ArmTokens(Protocol):
    async def headers(self) -> dict[str, str]: ...

    async def aclose(self) -> None: ...


class ArmToken:
    def __init__(self, env: Mapping[str, str], *, resource: str, anonymous: bool = False,
                 client: HttpClient | None = None) -> None:
        self._env = {k: v.strip() for k, v in env.items() if k.startswith(("AZURE_", "IDENTITY_"))}
        self._resource = resource  # e.g. https://management.azure.com/
        self._anonymous = anonymous
        self._client = client or HttpClient(timeout=10.0)
        self._backoff = Backoff(attempts=3, base=0.5, cap=2.0, deadline=15.0)
        self._token, self._expires = "", 0.0
        self._lock = asyncio.Lock()

    @property
    def source(self) -> str:
        env = self._env
        if self._anonymous:
            return "none"
        if env.get("AZURE_CLIENT_SECRET") and env.get("AZURE_TENANT_ID") and env.get("AZURE_CLIENT_ID"):
            return "client_secret"
        return "app_service" if env.get("IDENTITY_ENDPOINT") and env.get("IDENTITY_HEADER") else "imds"

    async def headers(self) -> dict[str, str]:
        if self._anonymous:
            return {}
        async with self._lock:
            if time.time() >= self._expires - EARLY_SECONDS:
                await self._refresh()
        return {"Authorization": f"Bearer {self._token}"}

    async def _refresh(self) -> None:
        env, source = self._env, self.source
        if source == "client_secret":
            authority = (env.get("AZURE_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST).rstrip("/")
            form = {"grant_type": "client_credentials", "client_id": env["AZURE_CLIENT_ID"],
                    "client_secret": env["AZURE_CLIENT_SECRET"], "scope": self._resource.rstrip("/") + "/.default"}
            response = await send(self._client, "POST", f"{authority}/{env['AZURE_TENANT_ID']}/oauth2/v2.0/token",
                                  backoff=self._backoff, content=urlencode(form).encode(),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            query = {"resource": self._resource}
            if env.get("AZURE_CLIENT_ID"):  # a user-assigned identity
                query["client_id"] = env["AZURE_CLIENT_ID"]
            if source == "app_service":
                url, headers = env["IDENTITY_ENDPOINT"], {"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}
                query["api-version"] = "2019-08-01"
            else:
                url, headers = IMDS_TOKEN_URL, {"Metadata": "true"}
                query["api-version"] = "2018-02-01"
            response = await send(self._client, "GET", url, backoff=self._backoff, params=query, headers=headers)
        self._token, self._expires = _read(response, source)

    async def aclose(self) -> None:
        await self._client.aclose()


def _read(response: HttpResponse, source: str) -> tuple[str, float]:
    """The token and when it expires; the error names the source, never the answer (it may echo a secret)."""
    try:
        body = response.json()
        token = str(body["access_token"])
        if "expires_on" in body:
            expires = float(body["expires_on"])
        else:
            expires = time.time() + float(body["expires_in"])
    except (ValueError, KeyError, TypeError):
        raise NoArmToken("aci_unauthorized", f"no ARM token from {source} (HTTP {response.status_code})") from None
    if response.status_code != 200:
        raise NoArmToken("aci_unauthorized", f"no ARM token from {source} (HTTP {response.status_code})")
    return token, expires
