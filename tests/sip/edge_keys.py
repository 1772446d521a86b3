"""An edge's two credentials as a stack gives them (docs/sip.md#edge-credentials): derived for the control URL
the dispatcher lists it by, from the dispatcher's SIP_EDGE_SECRET, which the edge never holds."""

from __future__ import annotations

from dispatcher.phone.edge_secret import EdgeSecret

# The edge file's lines naming them (beside control_port)
KEY_SETTINGS = 'control_secret_env = "EDGE_CONTROL_KEY"\nedge_credential_env = "EDGE_CREDENTIAL"'


def edge_keys(secret: str, url: str) -> dict[str, str]:
    """The variables KEY_SETTINGS names, for the edge at `url`."""
    derived = EdgeSecret(secret)
    return {"EDGE_CONTROL_KEY": derived.control_credential(url), "EDGE_CREDENTIAL": derived.edge_credential(url)}
