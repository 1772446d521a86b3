"""A fake Azure Key Vault: `GET /secrets/<name>/<version>?api-version=…`, as strict as the service.

Served over TLS like the fake ARM, with its certificate (tests/fakes/arm_aci.py `serve_tls(…, like=)`:
one file for a test to trust). A call needs `api-version` (400 `BadParameter`) and a bearer token that
the fake ARM's token endpoint issued for Key Vault's scope, `https://vault.azure.net/.default`
(401 `Unauthorized`: an ARM token is refused, as Key Vault refuses a token for another audience).
A secret or version that is not there is 404 `SecretNotFound`; `forbidden` names the secrets the
caller has no role on (403 `Forbidden`). Every read is recorded in `reads`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.arm_aci import FakeArmAci, TlsFake

VAULT_SCOPE = "https://vault.azure.net/.default"


def vault_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class FakeKeyVault(TlsFake):
    def __init__(self, authority: FakeArmAci) -> None:
        super().__init__()
        self.authority = authority  # whose token endpoint issues the tokens this vault accepts
        self.secrets: dict[tuple[str, str], str] = {}  # (name, version) → value
        self.forbidden: set[str] = set()
        self.reads: list[tuple[str, str]] = []

    def routes(self) -> list[Route]:
        return [Route("/secrets/{name}/{version}", self.get, methods=["GET"])]

    def uri(self, name: str, version: str) -> str:
        return f"{self.url}/secrets/{name}/{version}"

    async def get(self, request: Request) -> Response:
        if "api-version" not in request.query_params:
            return vault_error(400, "BadParameter", "The request URI contains an invalid api-version.")
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or self.authority.tokens.get(auth.removeprefix("Bearer ")) != VAULT_SCOPE:
            return vault_error(401, "Unauthorized", "AKV10022: Invalid audience.")
        name, version = request.path_params["name"], request.path_params["version"]
        if name in self.forbidden:
            return vault_error(403, "Forbidden", "Caller is not authorized to perform action on resource.")
        if (name, version) not in self.secrets:
            return vault_error(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found.")
        self.reads.append((name, version))
        return JSONResponse({"value": self.secrets[(name, version)], "id": self.uri(name, version),
                             "attributes": {"enabled": True}})
