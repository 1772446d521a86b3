"""The SIP edge's boot on Azure (stacks/azure/sip_edge.py): bash that reads a secret from Key Vault and
signs podman in to the registry, each with the VM's user-assigned identity's token from the instance
metadata service. Each call is made once, with a timeout: the shared boot retries it with backoff and
fails the boot when it never succeeds (stacks/shared/sip_edge_host.py). No token reaches a command line
(a process list shows every argument): curl reads the header and the form from its stdin.

The ACR exchange is `az acr login --expose-token`'s (stacks/azure/registry_login.py): an Entra ID token
for ARM, exchanged at `https://<login server>/oauth2/exchange` for a refresh token that is the password
of the all-zero user.
"""

from __future__ import annotations

from stacks.azure.registry_login import USERNAME
from stacks.azure.vault_read import JSON_FIELD, vault_read
from stacks.shared.sip_edge_host import METADATA

WIRESERVER = "168.63.129.16"  # Azure's host address: DNS, and the VM agent's wireserver
IMDS = f"http://{METADATA}/metadata"


def boot_functions(uris: dict[str, str], client_id: str, registry: str) -> str:
    """bash: `fetch NAME` prints the secret's pinned version (`uris`: NAME -> versioned secret URI);
    `acr_token` prints a registry refresh token for `registry`."""
    cases = "\n".join(f"    {name}) uri='{uri}';;" for name, uri in uris.items())
    return f"""imds_token() {{
  curl -sf --max-time 10 -H Metadata:true \\
    '{IMDS}/identity/oauth2/token?api-version=2018-02-01&client_id={client_id}'"&resource=$1" \\
    | {JSON_FIELD} access_token
}}
fetch() {{
  local uri token
  case "$1" in
{cases}
    *) return 1;;
  esac
  token=$(imds_token https%3A%2F%2Fvault.azure.net) || return 1
  {vault_read()}
}}
acr_token() {{
  local token
  token=$(imds_token https%3A%2F%2Fmanagement.azure.com%2F) || return 1
  printf '%s' "$token" | curl -sf --max-time 15 --data-urlencode grant_type=access_token \\
    --data-urlencode service={registry} --data-urlencode access_token@- 'https://{registry}/oauth2/exchange' \\
    | {JSON_FIELD} refresh_token
}}"""


def registry_login(registry: str) -> str:
    """A pipeline that hands podman the registry's token through stdin."""
    return f"acr_token | podman login --username {USERNAME} --password-stdin {registry}"
