"""An edge on an IPv6 address (docs/sip.md#configuration): PJSIP's UDP transport and the front's loopback hop to its
workers are IPv4, and an edge given `::` or `::1` stopped at start with PJSIP's
"gethostbyname() has returned error (PJ_ERESOLVE)", naming nothing to change. The file's load refuses it instead,
naming the key and the way forward, for sip_address, sip_address_env's value and public_address alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipedge.config import ConfigError, load

EDGE = """
{address}
sip_port = 5060
rtp_port = 40000
rtp_port_count = 20
[[trunk]]
name = "carrier"
sources = ["192.0.2.0/24"]
numbers = {{ "+14155550199" = "" }}
"""


def _load(tmp_path: Path, address: str, env: dict[str, str] | None = None) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(address=address))
    load({"SIP_EDGE_CONFIG": str(path), **(env or {})})


@pytest.mark.parametrize("address", ["::", "::1", "2001:db8::5"])
@pytest.mark.parametrize("key", ["sip_address", "sip_address_env", "public_address"])
def test_an_ipv6_address_is_refused_at_load_naming_ipv4(tmp_path: Path, key: str, address: str) -> None:
    given = {"sip_address": f'sip_address = "{address}"', "sip_address_env": 'sip_address_env = "HOST_IP"',
             "public_address": f'sip_address = "10.0.0.5"\npublic_address = "{address}"'}[key]
    with pytest.raises(ConfigError, match=rf"{key}.* '{address}' is an IPv6 address: the edge takes SIP and RTP "
                                          r"over IPv4 only for now; give this host's IPv4 address, or \"0.0.0.0\""):
        _load(tmp_path, given, {"HOST_IP": address})


@pytest.mark.parametrize("address", ["0.0.0.0", "10.0.0.5", "127.0.0.1"])
def test_an_ipv4_address_or_every_one_still_loads(tmp_path: Path, address: str) -> None:
    _load(tmp_path, f'sip_address = "{address}"\npublic_address = "203.0.113.10"')
