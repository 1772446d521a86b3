"""The Azure drain's parts: the operator's ARM sign-in, the dispatcher's Container App gone, the aci provider.

Sign-in is the operator's, as for `pulumi up`: a service principal in `AZURE_TENANT_ID`,
`AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (dispatcher/machines/aci/auth.py), else the Azure CLI's
`az login` (`az account get-access-token --resource <ARM>`, each token until five minutes before it
expires). The stack's own `AZURE_CLIENT_ID` (the dispatcher's managed identity) is never used here.

`drain: true` removes the Container App's ingress and lets it scale to zero, but a replica of the
last revision may still finish its sessions' relays for its termination grace (at most 600 s) and
launch reserve groups meanwhile. So the sweep starts once ARM counts no replica in any revision
(`GET …/Microsoft.App/containerApps/<app>/revisions`, api-version 2024-03-01: each revision's
`properties.replicas`, the pods it runs now). Not verified against real Azure.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botchannel.contract import CHANNEL_URL_VARIABLE
from dispatcher.machines.aci.auth import EARLY_SECONDS, ArmToken, ArmTokens
from dispatcher.machines.aci.cell_settings import aci_cells
from dispatcher.machines.aci.reserve import AciWarmMachines
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.retry import Backoff, provider_request
from stacks.tools.drain_creates import DrainCreates
from voicefleet_settings.read import setting_text

CONTAINER_APPS_API_VERSION = "2024-03-01"
# The drain launches nothing: the provider's settings want an image by digest and a channel URL all the same.
UNUSED_IMAGE = "drain.invalid/bot@sha256:" + "0" * 64
UNUSED_CHANNEL = "wss://drain.invalid/bots/channel"
SERVICE_PRINCIPAL = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")


class AzureCliToken:
    """ARM tokens from the operator's `az login`."""

    def __init__(self, resource: str, *, timeout: float = 60.0) -> None:
        self._resource, self._timeout = resource, timeout
        self._token, self._expires = "", 0.0

    async def headers(self) -> dict[str, str]:
        if time.time() >= self._expires - EARLY_SECONDS:
            self._token, self._expires = await self._fetch()
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch(self) -> tuple[str, float]:
        az = shutil.which("az")
        if az is None:
            raise MachinesError("aci_unauthorized", "no Azure sign-in: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                                "AZURE_CLIENT_SECRET (a service principal), or install the Azure CLI and `az login`")
        process = await asyncio.create_subprocess_exec(
            az, "account", "get-access-token", "--resource", self._resource, "--output", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, _ = await asyncio.wait_for(process.communicate(), self._timeout)
        except TimeoutError:
            process.kill()
            raise MachinesError("aci_unauthorized", f"`az account get-access-token` gave no token in "
                                f"{self._timeout:g} s") from None
        try:  # the answer holds the token: an error names the exit code, never the output
            answer = json.loads(out) if process.returncode == 0 else {}
            return str(answer["accessToken"]), float(answer.get("expires_on") or time.time() + EARLY_SECONDS + 60)
        except (ValueError, KeyError, TypeError):
            raise MachinesError("aci_unauthorized", f"`az account get-access-token` failed (exit "
                                f"{process.returncode}): `az login` first") from None

    async def aclose(self) -> None:
        """Nothing held between calls."""


def aci_machines(env: Mapping[str, str]) -> AciWarmMachines:
    """The dispatcher's own aci provider on the stack's names (its own resource group), signed in as the operator."""
    settings = _stack_settings(env)
    return AciWarmMachines(settings, DrainCreates(), token=operator_token(settings, env), channel_url=UNUSED_CHANNEL)


def aci_cell_machines(env: Mapping[str, str]) -> dict[str, AciWarmMachines]:
    """Each ACI_CELLS cell's provider, by the cell's name, subscription and resource group, on the stack's
    names and signed in as the operator (whose role on each cell's resource group the stack's `pulumi up`
    needed to assign the dispatcher's there). A cell's `client_id` is the dispatcher host's own identity,
    not the operator's: never used here. A cell in the stack's own resource group is the stack's own sweep."""
    settings = _stack_settings(env)
    own = f"/subscriptions/{settings.subscription_id}/resourceGroups/{settings.resource_group}".lower()
    machines: dict[str, AciWarmMachines] = {}
    for cell in aci_cells(setting_text(env, "ACI_CELLS")):
        if cell.scope.lower() == own:
            continue
        here = replace(settings.for_cell(cell), client_id="")
        machines[f"cell {cell.name} ({cell.subscription_id}/{cell.resource_group})"] = AciWarmMachines(
            here, DrainCreates(), token=operator_token(here, env), channel_url=UNUSED_CHANNEL, cell=cell.name)
    return machines


def _stack_settings(env: Mapping[str, str]) -> AciSettings:
    """The stack's own provider settings; its cells read apart (`aci_cell_machines`): the dispatcher's
    refusals of a cell it could not sign in to there are its own sign-in's, not the operator's."""
    env = {"ACI_BOT_IMAGE": UNUSED_IMAGE, **env, CHANNEL_URL_VARIABLE: UNUSED_CHANNEL}
    return AciSettings.from_env({k: v for k, v in env.items() if k != "ACI_CELLS"})


def operator_token(settings: AciSettings, env: Mapping[str, str]) -> ArmTokens:
    resource = settings.arm_resource
    if settings.auth == "none" or all(env.get(name, "").strip() for name in SERVICE_PRINCIPAL):
        return ArmToken(env, resource=resource, anonymous=settings.auth == "none",
                        client=HttpClient(timeout=10.0, ca_file=settings.ca_bundle or None))
    return AzureCliToken(resource)


class ContainerAppReplicas:
    """How many replicas the dispatcher's Container App runs, in all its revisions, as ARM reports it."""

    def __init__(self, settings: AciSettings, token: ArmTokens, app: str) -> None:
        self.app = app
        self._url = (f"{settings.arm_endpoint}/subscriptions/{settings.subscription_id}/resourceGroups/"
                     f"{settings.resource_group}/providers/Microsoft.App/containerApps/{app}/revisions")
        self._token = token
        self._client = HttpClient(timeout=settings.timeout, ca_file=settings.ca_bundle or None)
        self._backoff = Backoff(attempts=4, base=0.5, cap=4.0, deadline=settings.retry_deadline)

    async def running(self) -> int:
        count, url = 0, self._url
        params: dict[str, str] | None = {"api-version": CONTAINER_APPS_API_VERSION}
        for _ in range(100):  # pages by `nextLink` (which carries the api-version)
            response = await provider_request("aci", self._client, "GET", url, backoff=self._backoff,
                                              error=MachinesError, params=params, headers=await self._token.headers())
            if response.status_code != 200:
                raise refusal(MachinesError, "aci", response.status_code,
                              f"ARM refused to list the revisions of Container App {self.app} "
                              f"(HTTP {response.status_code})")
            page: dict[str, Any] = response.json()
            count += sum(int((r.get("properties") or {}).get("replicas") or 0) for r in page.get("value") or [])
            url, params = page.get("nextLink") or "", None
            if not url:
                break
        return count

    async def aclose(self) -> None:
        await self._client.aclose()
