"""The tokens a SIP edge's two containers share on Kubernetes (docs/sip.md#on-kubernetes): Kamailio's front and the
workers run apart (sipedge/edge_part.py), so the three tokens a whole edge makes at each start are made by the
stack instead, each an HMAC-SHA256 of the edge's control URL under the deployment's SIP_EDGE_SECRET with a label of
its own: the same at every `up` (the pod is not new for them), new with a rotated secret, and never the secret
itself, which stays in the dispatcher's Secret alone."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pulumi

from sipedge.edge_part import DRAIN_TOKEN_VARIABLE
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE
from stacks.config.sip_edge import SipEdgeSettings

LABELS = {TOKEN_VARIABLE: "voicefleet sip edge front token v1",
          CALL_TOKEN_VARIABLE: "voicefleet sip edge call token v1",
          DRAIN_TOKEN_VARIABLE: "voicefleet sip edge drain token v1"}


def derived_token(secret: str, label: str, control_url: str) -> str:
    """256 bits, base64url without padding (43 characters, as sipedge/worker_place.py new_token's)."""
    tag = hmac.new(secret.encode(), f"{label}\n{control_url}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(tag).decode().rstrip("=")


def edge_tokens(edge: SipEdgeSettings, control_url: str) -> dict[str, pulumi.Output[str]]:
    """variable -> token, for both containers' environment."""
    if edge.deployment_secret is None:
        raise ValueError("the SIP edge's tokens need the deployment secret (load makes it)")
    secret = edge.deployment_secret

    def token(label: str) -> pulumi.Output[str]:
        return pulumi.Output.secret(secret.apply(lambda value: derived_token(value, label, control_url)))
    return {variable: token(label) for variable, label in LABELS.items()}
