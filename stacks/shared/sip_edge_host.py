"""The SIP edge's host, booted from a script (docs/sip.md#in-the-cloud): the edge's code comes from the
dispatcher image the stack already builds and pushes (its venv holds every dependency of the edge's
but PJSIP, and `sipedge/` beside `dispatcher/`), pulled by digest with podman, so the edge runs the
very code and dependency closure of the deploy, with no checkout, no build tool and no second image
to build. The host adds what the dispatcher must not carry: PJSIP's wheel (`pjsua2-python`, pinned
to the lock's version and sha256, installed by the image's own pip) and, with several workers,
Debian's Kamailio, in a small image built on the host from the pulled one.

The script holds no secret: the edge's TOML (addresses, ports, variable names) is written as is, and
each secret is read at boot from the cloud's secret store (`fetch NAME`) into a root-only env file
that podman hands the container; nothing is written to a command line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "uv.lock"
PJSIP_PACKAGE = "pjsua2-python"
# The dispatcher image's base (images/dispatcher.Dockerfile): CPython 3.11 on x86_64 Linux.
WHEEL_TAG = "cp311-cp311-manylinux2014_x86_64"
FOLDER = "/etc/sipedge"
CONFIG = f"{FOLDER}/edge.toml"
SECRETS = f"{FOLDER}/secrets.env"
UNIT = "/etc/systemd/system/sipedge.service"
IMAGE = "localhost/sipedge:host"
EDGE_UID = 10001  # the dispatcher image's user (images/dispatcher.Dockerfile), which the edge runs as
METADATA = "169.254.169.254"
FIREWALL = f"{FOLDER}/metadata.nft"


@cache
def pjsip_requirement() -> str:
    """`pjsua2-python==V --hash=sha256:H`: the lock's version and its x86_64 CPython 3.11 wheel's hash."""
    lock = tomllib.loads(LOCK.read_text())
    (package,) = [p for p in lock["package"] if p["name"] == PJSIP_PACKAGE]
    (wheel,) = [w for w in package["wheels"] if WHEEL_TAG in w["url"]]
    return f"{PJSIP_PACKAGE}=={package['version']} --hash={wheel['hash']}"


def containerfile(image: str, *, kamailio: bool) -> str:
    install = ("RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends kamailio "
               "&& rm -rf /var/lib/apt/lists/*\n") if kamailio else ""
    return f"""FROM {image}
USER root
{install}RUN printf '%s\\n' '{pjsip_requirement()}' > /tmp/pjsip.txt \\
 && /usr/local/bin/python -m pip install --no-cache-dir --no-deps --require-hashes --target /opt/pjsip \\
    -r /tmp/pjsip.txt && rm /tmp/pjsip.txt
ENV PYTHONPATH=/opt/pjsip SIP_EDGE_CONFIG={CONFIG}
USER {EDGE_UID}:{EDGE_UID}
ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "sipedge"]
"""


def metadata_firewall() -> str:
    """nftables: the edge's user may not reach the instance metadata service. The container shares the
    host's network (its RTP range and the private address), so without this it could take the role's
    credentials; the host's own boot, as root, still reads its secrets. Loaded at every start of the unit."""
    return f"""table inet sipedge_metadata
delete table inet sipedge_metadata
table inet sipedge_metadata {{
  chain out {{
    type filter hook output priority 0; policy accept;
    meta skuid {EDGE_UID} ip daddr {METADATA} reject
  }}
}}
"""


SECRET_TRIES = 6


def read_secrets_function() -> str:
    """bash: `read_secret NAME` appends NAME=value to the env file, or fails the boot. A fetch's failure
    inside `printf "$(fetch NAME)"` would not stop the script (set -e skips a substitution in a command's
    arguments), and the edge would restart forever on an empty value; an assignment's status does stop it.
    An instance role is often not yet usable seconds after it is made (IAM propagates), so each secret
    is tried SECRET_TRIES times, 2, 4, 8, … s apart (~1 min in all), before the boot exits non-zero
    (`cloud-init status`: error) with the edge's unit never written."""
    return f"""read_secret() {{
  local value try
  for try in $(seq 1 {SECRET_TRIES}); do
    if value=$(fetch "$1") && [ -n "$value" ]; then
      printf '%s=%s\\n' "$1" "$value" >> {SECRETS}
      return 0
    fi
    echo "sipedge boot: reading $1 from the secret store failed (try $try of {SECRET_TRIES})" >&2
    [ "$try" -lt {SECRET_TRIES} ] && sleep $((2 ** try))
  done
  echo "sipedge boot: $1 could not be read; the edge is not started (the host's role, or the secret)" >&2
  exit 1
}}"""


def boot_script(*, config: str, image: str, registry: str, region: str, fetch_function: str,
                secrets: Sequence[str], kamailio: bool) -> str:
    """A root bash script: podman and the AWS CLI from Debian, the dispatcher image pulled (ECR's
    token through stdin), the edge's image built on it, its file and secrets written, its unit started."""
    lines = "\n".join(f"read_secret {name}" for name in secrets)
    return f"""#!/bin/bash
# voicefleet SIP edge: python -m sipedge from the dispatcher image, configured by the stack; secrets read at boot.
set -euo pipefail
umask 077
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends podman awscli ca-certificates nftables
{fetch_function}
install -d -m 0700 {FOLDER} /root/sipedge-build
aws ecr get-login-password --region {region} | podman login --username AWS --password-stdin {registry}
podman pull {image}
cat > /root/sipedge-build/Containerfile <<'CONTAINERFILE'
{containerfile(image, kamailio=kamailio)}CONTAINERFILE
podman build --pull=never -t {IMAGE} /root/sipedge-build
cat > {CONFIG} <<'EDGE'
{config}EDGE
chmod 0644 {CONFIG}
{read_secrets_function()}
: > {SECRETS}
{lines}
cat > {FIREWALL} <<'NFT'
{metadata_firewall()}NFT
cat > {UNIT} <<'UNIT'
[Unit]
Description=voicefleet SIP edge
After=network-online.target nftables.service
Wants=network-online.target

[Service]
ExecStartPre=/usr/sbin/nft -f {FIREWALL}
ExecStartPre=-/usr/bin/podman rm -f sipedge
ExecStart=/usr/bin/podman run --rm --name sipedge --network host --env-file {SECRETS} \\
  -v {CONFIG}:{CONFIG}:ro {IMAGE}
ExecStop=/usr/bin/podman stop -t 10 sipedge
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now sipedge
"""
