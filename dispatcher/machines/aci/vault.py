"""ACI_BOT_SECRETS: the bots' keys, read from Key Vault with the dispatcher's own identity.

ACI has no task definition to hold a secret by reference (as ECS does) and a container group's own
identity would need read access to the vault for every bot; so the dispatcher reads each
referenced secret version once (`GET <versioned secret URI>?api-version=7.4`, a token for
`https://vault.azure.net`), keeps the values in memory and hands them to every group as
`secureValue`s. A version is immutable, so the cache never goes stale: a rotation is a new URI in
the stack's environment, hence a new revision of the dispatcher. Errors name the variable and the
status, never a value or an answer's body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from dispatcher.machines.aci.auth import ArmToken
from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.outbound.retry import Backoff, provider_request

KEY_VAULT_RESOURCE = "https://vault.azure.net"  # the token's audience for every public-cloud vault
KEY_VAULT_API_VERSION = "7.4"


class BotSecrets:
    def __init__(self, references: Mapping[str, str], *, token: ArmToken, client: HttpClient,
                 retry_deadline: float) -> None:
        self._references = dict(references)  # variable → versioned secret URI
        self._token, self._client = token, client
        self._backoff = Backoff(attempts=4, base=0.5, cap=4.0, deadline=retry_deadline)
        self._values: dict[str, str] | None = None
        self._lock = asyncio.Lock()

    async def values(self) -> dict[str, str]:
        """Every referenced secret's value, read once (one reader at a time; a failed read is retried
        at the next launch)."""
        if not self._references:
            return {}
        async with self._lock:
            if self._values is None:
                self._values = {name: await self._read(name, uri) for name, uri in self._references.items()}
        return dict(self._values)

    async def _read(self, name: str, uri: str) -> str:
        response = await provider_request("aci", self._client, "GET", uri, backoff=self._backoff,
                                          error=MachinesError, params={"api-version": KEY_VAULT_API_VERSION},
                                          headers=await self._token.headers())
        if response.status_code in (401, 403):
            raise MachinesError("aci_unauthorized", f"Key Vault refused to read ACI_BOT_SECRETS' {name} "
                                f"(HTTP {response.status_code}): the dispatcher's identity needs Key Vault "
                                "Secrets User on that secret")
        try:
            value = response.json()["value"] if response.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            value = None
        if not isinstance(value, str):
            raise MachinesError("aci_rejected", f"no value for ACI_BOT_SECRETS' {name} from Key Vault "
                                f"(HTTP {response.status_code})")
        return value

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._token.aclose()
