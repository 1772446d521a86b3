"""The nodes a Kubernetes stack's SIP edge runs on (`sipEdge.nodeSelector`, `nodeTaint`, `publicAddress`:
docs/sip.md#on-kubernetes), checked at preview.

The edge's pod takes its node's own ports (SIP, the RTP range, the control API), so it runs only where the
team has said it may: nodes it labels for the edge, whose firewall admits the trunks and whose address the
trunks are told. The stack can neither find those nodes nor learn their address, so both are required.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from stacks.config.reader import Reader

KEY = "sipEdge"
DOCS = "docs/sip.md#on-kubernetes"
# The variable the pod's node address reaches the edge in (the downward API's status.hostIP), which the
# rendered file names as its sip_address_env and control_address_env.
NODE_ADDRESS_VARIABLE = "SIP_EDGE_NODE_ADDRESS"
# A label's key (an optional DNS-subdomain prefix and a name) and value, as the API server takes them.
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# `kubectl taint`'s form: key[=value]:Effect.
_TAINT = re.compile(r"^(?P<key>[^=:\s]+)(=(?P<value>[^=:\s]*))?:(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)$")
EXAMPLE_LABEL = "voicefleet.io/sip-edge=true"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str | None
    effect: str

    def toleration(self) -> dict[str, str]:
        """The pod's toleration of exactly this taint."""
        if self.value is None:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


def taint(text: str | None) -> Taint | None:
    found = _TAINT.match(text or "")
    return None if found is None else Taint(found["key"], found["value"], found["effect"])


def check_nodes(cfg: Reader, node_selector: Mapping[str, str], node_taint: str | None,
                public_address: str | None) -> None:
    """The nodes named (labels, a taint of kubectl's form), and a public address of the nodes'."""
    if not node_selector:
        raise cfg.fail(KEY, "nodeSelector: the edge's pod takes its node's own ports (SIP 5060, the RTP range, the "
                            "control API), so it runs only on nodes kept for it, whose firewall admits the trunks "
                            f"and whose address is publicAddress: label them (kubectl label nodes NODE "
                            f"{EXAMPLE_LABEL}) and name the label, e.g. nodeSelector: {{voicefleet.io/sip-edge: "
                            f"\"true\"}} ({DOCS})")
    for label, value in node_selector.items():
        if not _LABEL_KEY.match(label) or not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise cfg.fail(KEY, f"nodeSelector: {label}={value} is not a node label (a key such as "
                                "voicefleet.io/sip-edge, a value of up to 63 letters, digits, '-', '_' or '.'; "
                                f"{DOCS})")
    if node_taint is not None and taint(node_taint) is None:
        raise cfg.fail(KEY, f"nodeTaint: {node_taint!r} is not a taint as kubectl writes it, "
                            "key[=value]:NoSchedule (or PreferNoSchedule, NoExecute), the taint kept on the edge's "
                            f"nodes ({DOCS})")
    _check_public_address(cfg, public_address)


def _check_public_address(cfg: Reader, given: str | None) -> None:
    fix = ("the node's external IP (kubectl get nodes -o wide), or a static IP routed to it; the stack cannot learn "
           f"it, and the trunks, SDP and Contact name it ({DOCS})")
    if given is None:
        raise cfg.fail(KEY, f"publicAddress: give the IPv4 address trunks send SIP and RTP to: {fix}")
    try:
        address = ipaddress.ip_address(given)
    except ValueError:
        raise cfg.fail(KEY, f"publicAddress: {given!r} is not an IP address: give {fix}") from None
    if address.version != 4 or address.is_loopback or address.is_unspecified or address.is_link_local \
            or address.is_multicast:
        raise cfg.fail(KEY, f"publicAddress: {given} is not an IPv4 address a trunk can reach: give {fix}")
