"""Hostile review of the IPv6 refusal at load (docs/sip.md#configuration: "An IPv6 address (`::`, `::1`, a global one),
here, in `sip_address_env`'s variable or in `public_address`, stops the edge at start naming the key"). An IPv6
address is written bracketed wherever SIP names it (RFC 3261 25.1, `IPv6reference`), which is how an operator copies
it from a SIP URI or a carrier's portal; sip_address refuses anything that is not a bare IP address, public_address
takes any text and refuses only a bare IPv6 literal."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipedge.config import ConfigError, load

EDGE = """
sip_address = "10.0.0.5"
public_address = "{address}"
sip_port = 5060
rtp_port = 40000
rtp_port_count = 20
[[trunk]]
name = "carrier"
sources = ["192.0.2.0/24"]
numbers = {{ "+14155550199" = "" }}
"""


@pytest.mark.parametrize("address", ["[2001:db8::5]", " 2001:db8::5"])
def test_an_ipv6_public_address_in_any_spelling_is_refused_at_load(tmp_path: Path, address: str) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(address=address))
    with pytest.raises(ConfigError, match="public_address"):
        load({"SIP_EDGE_CONFIG": str(path)})
