"""Who the edge's SIP port admits in a cloud stack (docs/sip.md#inbound-digest): the trunks' `sources`, each
marked with why it is wider than WIDEST_PREFIX (its trunk's allowAnySource), and, for a trunk with an inbound
digest credential and no sources, any IPv4 address, marked so (CREDENTIAL_SOURCE_MARK), which the policy pack
takes for 0.0.0.0/0 on the SIP ports alone. The clouds' edge rules take IPv4 networks only (AWS's cidrIpv4), so
no ::/0 is opened: such a trunk's PBX reaches the edge over IPv4."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stacks.config.sip_edge_keys import SipEdgeKey

ANY_IPV4 = "0.0.0.0/0"
# In a SIP rule's description: why it admits any address (policy/rules.py reads both). No apostrophe: EC2 takes a
# rule's description only from a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$* (stacks/tools/ec2_descriptions.py).
ANY_SOURCE_MARK = "trunk allowAnySource"
CREDENTIAL_SOURCE_MARK = "trunk inboundDigestUsername without sources"


def credential_only_trunk(key: SipEdgeKey) -> str | None:
    """The first trunk with an inbound digest credential and no sources, whose callers come from any address."""
    return next((t.name for t in key.trunks if t.inbound_digest_username is not None and not t.sources), None)


def signalling_sources(key: SipEdgeKey, networks: Mapping[str, bool]) -> dict[str, str]:
    """Each network the SIP ports admit (the trunks' `networks`, each with whether it is wider than the widest a
    trunk names without allowAnySource), with the mark a rule for it carries ("" for a narrow one)."""
    found = {network: ANY_SOURCE_MARK if wide else "" for network, wide in networks.items()}
    if credential_only_trunk(key) is not None:
        found.setdefault(ANY_IPV4, CREDENTIAL_SOURCE_MARK)
    return dict(sorted(found.items()))


def open_note(key: SipEdgeKey) -> str | None:
    """What the plan says of a SIP port open to any address for a credential trunk; None when there is none."""
    trunk = credential_only_trunk(key)
    if trunk is None:
        return None
    return (f"SIP edge: trunk {trunk} has an inbound digest credential and no sources, so the SIP port (UDP 5060"
            f"{', and tlsPort' if key.tls_port is not None else ''}) is open to any IPv4 address ({ANY_IPV4}); "
            "every INVITE from an address no trunk names is challenged, and only that credential admits it "
            "(docs/sip.md#inbound-digest)")
