"""coturn for a managed TURN relay: its configuration and the VM's boot script (both clouds).

The relay is not an open relay: only TURN REST credentials minted from the shared secret are
accepted (`use-auth-secret`), relayed peers may not be private, loopback, link-local (the clouds'
metadata service) or other reserved ranges (`denied-peer-ip`, the list dispatcher/media/turn.py keeps),
no multicast or TCP relaying, per-user and total allocation quotas, no CLI. Metrics: Debian's
coturn is built without Prometheus support (`turnserver --help` has no --prometheus), so the relay
logs to syslog (shipped by the cloud's agent); no metrics port is opened.
Secrets never enter the rendered text: the boot script reads them with the VM's own identity
and appends them to a root:turnserver 0640 file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pulumi

from dispatcher.media.turn import DENIED_PEER_RANGES
from stacks.config.turn import USER_QUOTA, TurnSettings

CONFIG = "/etc/coturn/turnserver.conf"
TLS_DIR = "/etc/coturn/tls"
# Debian's coturn.service runs `User=turnserver` with no capabilities, so coturn cannot bind the TLS
# port 443 (it retries the bind forever and never starts). This drop-in gives the unit exactly the
# one capability a port below 1024 needs, and nothing else (tests/relay/test_coturn_unit.py).
UNIT_DROP_IN = "/etc/systemd/system/coturn.service.d/voicefleet.conf"
BIND_CAPABILITY = """[Service]
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
"""
LISTEN_PORT = 3478
MAX_BPS_PER_ALLOCATION = 64 * 1024  # bytes/s: 512 kbit/s, far above one voice call's audio
MAX_ALLOCATE_LIFETIME_SECONDS = 600
TLS_PORT = 443
_Urls = TypeVar("_Urls", str, pulumi.Output[str])  # TURN_URLS: plain for an external service, else an Output


def realm(turn: TurnSettings) -> str:
    return turn.domain or "voicefleet"


def urls(turn: TurnSettings, host: str) -> list[str]:
    """What the dispatcher hands out (TURN_URLS): UDP and TCP on 3478, TLS on 443 when configured."""
    found = [f"turn:{host}:{LISTEN_PORT}?transport=udp", f"turn:{host}:{LISTEN_PORT}?transport=tcp"]
    if turn.tls and turn.domain:
        found.append(f"turns:{turn.domain}:{TLS_PORT}?transport=tcp")
    return found


def turn_urls(turn: TurnSettings | None,
              managed_relay: Callable[[TurnSettings], pulumi.Output[list[str]]]) -> pulumi.Input[list[str]] | None:
    """The TURN URLs clients and bots get, in both clouds: none without TURN, the external service's,
    or those of the relay `managed_relay` provisions."""
    if turn is None:
        return None
    if turn.mode != "managed":
        return list(turn.external_urls)
    return managed_relay(turn)


def dispatcher_environment(turn_urls: pulumi.Input[Sequence[str]],
                           transports: Sequence[str] = ("daily", "webrtc")) -> dict[str, pulumi.Input[str]]:
    """The dispatcher's TURN variables (stacks/shared/contract.py TURN_ENV; the secret comes by reference,
    one key's share of the relay is turnCredentialsPerKey's, stacks/config/dispatcher_keys.py);
    `transports`: the web sessions it offers, the default first (stacks/config/bot.py web_transports)."""
    urls = pulumi.Output.from_input(turn_urls).apply(lambda found: ",".join(found))
    found: dict[str, pulumi.Input[str]] = {**_variables(urls, transports)}
    return found


def external_environment(turn_urls: Sequence[str], transports: Sequence[str]) -> dict[str, str]:
    """The same variables for an external service, whose URLs are known at preview: plain values, as
    the k8s stack's agent-sandbox pool template is built from the dispatcher's plain settings."""
    return _variables(",".join(turn_urls), transports)


def _variables(urls: _Urls, transports: Sequence[str]) -> dict[str, _Urls | str]:
    return {
        "TRANSPORTS": ",".join(transports),
        "DEFAULT_TRANSPORT": transports[0],
        "TURN_URLS": urls,
        "ICE_TRANSPORT_POLICY": "relay",  # both peers through the relay: neither needs an open port
    }


def coturn_config(turn: TurnSettings) -> str:
    low, high = turn.relay_ports
    # The first line names the module's old path on purpose: this text is in every relay's boot script,
    # and editing it would restart the running relays (now stacks/shared/turn_server.py).
    lines = [
        "# voicefleet TURN relay (stacks/turn_server.py). The boot script appends external-ip,",
        "# static-auth-secret and the TLS files; nothing secret is in this text.",
        f"listening-port={LISTEN_PORT}",
        *([f"tls-listening-port={TLS_PORT}", f"cert={TLS_DIR}/cert.pem", f"pkey={TLS_DIR}/key.pem",
           "no-tlsv1", "no-tlsv1_1"] if turn.tls else ["no-tls", "no-dtls"]),
        f"min-port={low}",
        f"max-port={high}",
        f"realm={realm(turn)}",
        "use-auth-secret",
        "fingerprint",
        "no-cli",
        "no-multicast-peers",
        "no-tcp-relay",
        f"user-quota={USER_QUOTA}",
        f"total-quota={turn.total_quota}",
        # Bounded bandwidth: one allocation carries a voice call (Opus: tens of kbit/s), not a
        # holder's bulk traffic; the whole relay no more than every allocation at that rate.
        f"max-bps={MAX_BPS_PER_ALLOCATION}",
        f"bps-capacity={MAX_BPS_PER_ALLOCATION * turn.total_quota}",
        f"max-allocate-lifetime={MAX_ALLOCATE_LIFETIME_SECONDS}",  # a refresh extends it by this much at most
        "no-software-attribute",  # no version for scanners to match
        # A client signs again with a new nonce every 600 s. This does not end an allocation whose
        # credential expired: coturn keeps the key derived at allocation and accepts its refreshes
        # (tried against coturn 4.6.1), so nothing here revokes a credential; the dispatcher bounds
        # how many each API key holds (TURN_CREDENTIALS_PER_KEY, docs/security.md).
        "stale-nonce=600",
        "syslog",
        "simple-log",
        *(f"denied-peer-ip={peer}" for peer in DENIED_PEER_RANGES),
    ]
    return "\n".join(lines) + "\n"


def boot_script(turn: TurnSettings, *, public_ip: str, private_ip_command: str, fetch_function: str,
                secrets: Sequence[str], packages: Sequence[str] = ()) -> str:
    """A root bash script: install coturn from Debian, write its config, add secrets, start it.

    `fetch_function` defines `fetch NAME` (prints one secret's value) for the cloud; `secrets`
    are the names it is called with, in order: the shared secret, then the TLS certificate and key.
    """
    tls = ""
    if turn.tls:
        tls = f"""install -d -m 0750 -o root -g turnserver {TLS_DIR}
fetch {secrets[1]} > {TLS_DIR}/cert.pem
fetch {secrets[2]} > {TLS_DIR}/key.pem
chown root:turnserver {TLS_DIR}/cert.pem {TLS_DIR}/key.pem
chmod 0640 {TLS_DIR}/cert.pem {TLS_DIR}/key.pem
install -d -m 0755 {UNIT_DROP_IN.rsplit("/", 1)[0]}
cat > {UNIT_DROP_IN} <<'UNIT'
{BIND_CAPABILITY}UNIT
systemctl daemon-reload
"""
    return f"""#!/bin/bash
# voicefleet TURN relay: coturn from Debian, configured by the stack; secrets read at boot.
set -euo pipefail
umask 077
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends coturn curl ca-certificates {" ".join(packages)}
systemctl stop coturn || true
{fetch_function}
install -d -m 0750 -o root -g turnserver /etc/coturn
cat > {CONFIG} <<'COTURN'
{coturn_config(turn)}COTURN
printf 'external-ip=%s/%s\\n' '{public_ip}' "$({private_ip_command})" >> {CONFIG}
printf 'static-auth-secret=%s\\n' "$(fetch {secrets[0]})" >> {CONFIG}
{tls}chown root:turnserver {CONFIG}
chmod 0640 {CONFIG}
ln -sf {CONFIG} /etc/turnserver.conf
systemctl enable coturn
systemctl restart coturn
"""
