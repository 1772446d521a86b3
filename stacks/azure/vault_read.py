"""bash that reads one Key Vault secret with a managed identity's token, the token kept off every command
line (a process list shows every argument, for as long as curl retries): curl reads the header from stdin.
The SIP edge's boot and the TURN relay's both read their secrets with it."""

from __future__ import annotations

KEY_VAULT_API = "7.4"
JSON_FIELD = "python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)[sys.argv[1]])'"


def vault_read(retries: str = "") -> str:
    """bash: prints the value of the secret version at "$uri" read with "$token"; `retries`: curl's retry
    options, if the caller does not retry itself (curl reads the header once, so each retry sends it)."""
    options = f"{retries} " if retries else ""
    return (f"printf 'Authorization: Bearer %s\\n' \"$token\" | curl -sf --max-time 15 {options}-H @- "
            f"\"$uri?api-version={KEY_VAULT_API}\" \\\n    | {JSON_FIELD} value")
