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

import base64
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from stacks.config.reader import SettingsError
from stacks.config.sip_edge import TLS_CA_FILE, TLS_FILES, TLS_FOLDER, SipEdgeSettings

LOCK = Path(__file__).resolve().parents[2] / "uv.lock"
PJSIP_PACKAGE = "pjsua2-python"
# The dispatcher image's base (images/dispatcher.Dockerfile): CPython 3.11 on x86_64 Linux.
WHEEL_TAG = "cp311-cp311-manylinux2014_x86_64"
FOLDER = "/etc/sipedge"
CONFIG = f"{FOLDER}/edge.toml"
SECRETS = f"{FOLDER}/secrets.env"
# Each boot's reads go here first, renamed over SECRETS once every one succeeded: Compute Engine reruns
# the script at every boot, under an edge already enabled, which must never restart on a partial file.
NEW_SECRETS = f"{SECRETS}.new"
UNIT = "/etc/systemd/system/sipedge.service"
IMAGE = "localhost/sipedge:host"
EDGE_UID = 10001  # the dispatcher image's user (images/dispatcher.Dockerfile), which the edge runs as
METADATA = "169.254.169.254"
# The edge runs as EDGE_UID and binds ports above 1023 only (SIP 5060, control 5080, RTP), so it needs no
# capability: none is left it, and nothing it runs may gain one (a setuid binary included), so even a
# process that became root inside the container could not lift the metadata rule or flush nftables.
CONTAINER_HARDENING = ("--cap-drop=all", "--security-opt=no-new-privileges")
FIREWALL = f"{FOLDER}/metadata.nft"
# A stop's time past the edge's drain (SipEdgeSettings.drain_seconds): with workers, the supervisor's wait on a
# worker still draining (its STOP_SECONDS), the workers' and then Kamailio's stops (STOP_SECONDS each) and its
# log readers' (READERS_SECONDS), sipedge/supervisor.py; one PJSIP process needs a second for its BYEs' answers.
STOP_MARGIN_SECONDS = 45
# systemd's wait on `podman stop` past the time podman gives the edge: its SIGKILL and the container's removal.
PODMAN_STOP_SECONDS = 15


def stop_seconds(drain_seconds: int) -> int:
    """How long the edge's stop may take, its drain's `drain_seconds` included: what podman and a pod give it."""
    return drain_seconds + STOP_MARGIN_SECONDS


@cache
def pjsip_requirement() -> str:
    """`pjsua2-python==V --hash=sha256:H`: the lock's version and its x86_64 CPython 3.11 wheel's hash."""
    lock = tomllib.loads(LOCK.read_text())
    (package,) = [p for p in lock["package"] if p["name"] == PJSIP_PACKAGE]
    (wheel,) = [w for w in package["wheels"] if WHEEL_TAG in w["url"]]
    return f"{PJSIP_PACKAGE}=={package['version']} --hash={wheel['hash']}"


# Debian's mirror over HTTPS, so nothing needs port 80 out: deb.debian.org serves both, and its
# debian-security path is security.debian.org's archive. Cloud images also point apt at mirror lists
# (`URIs: mirror+file:///etc/apt/mirrors/debian.list`), which cloud-init fills at first boot with the
# cloud's own plain-HTTP mirror (Azure's: http://azure.deb.debian.cloud/debian): each of their lines
# keeps its path (/debian, /debian-security) and moves to deb.debian.org over HTTPS. One line of POSIX
# sh: the host's script runs it, and so does the Containerfile's RUN (/bin/sh).
APT_OVER_HTTPS = ("for list in /etc/apt/sources.list /etc/apt/sources.list.d/*; do if [ -f \"$list\" ]; then "
                  "sed -i -e 's#http://deb\\.debian\\.org/#https://deb.debian.org/#g' "
                  "-e 's#http://security\\.debian\\.org/#https://deb.debian.org/#g' \"$list\"; fi; done; "
                  "for list in /etc/apt/mirrors/*.list; do if [ -f \"$list\" ]; then "
                  "sed -i -e 's#^http://[^/]*/#https://deb.debian.org/#' \"$list\"; fi; done")


def containerfile(image: str, *, kamailio: bool, tls: bool = False) -> str:
    """The edge's image on the dispatcher's: the VM hosts build it, and a Kubernetes stack builds and pushes it
    (stacks/k8s/sip_edge_image.py). Its apt-get runs inside that image, whose Debian lists name
    http://deb.debian.org (every official Debian image's), and leaves through the host's network: the
    lists are rewritten to HTTPS first, as the host's are, so the build needs no port 80 either.
    `tls` with `kamailio`: the front takes tls_port, with Debian's TLS module (one PJSIP process takes it itself)."""
    packages = "kamailio kamailio-tls-modules" if tls else "kamailio"
    install = (f"RUN {APT_OVER_HTTPS} \\\n && apt-get update -qq "
               f"&& apt-get install -y -qq --no-install-recommends {packages} "
               "&& rm -rf /var/lib/apt/lists/*\n"
               ) if kamailio else ""
    return f"""FROM {image}
USER root
{install}RUN printf '%s\\n' '{pjsip_requirement()}' > /tmp/pjsip.txt \\
 && /usr/local/bin/python -m pip install --no-cache-dir --no-deps --require-hashes --target /opt/pjsip \\
    -r /tmp/pjsip.txt && rm /tmp/pjsip.txt
ENV PYTHONPATH=/opt/pjsip SIP_EDGE_CONFIG={CONFIG}
USER {EDGE_UID}:{EDGE_UID}
ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "sipedge"]
"""


def metadata_firewall(keep: Sequence[str] = (), blocked: Sequence[str] = (METADATA,)) -> str:
    """nftables: the edge's user may not reach the instance metadata service. The container shares the
    host's network (its RTP range and the private address), so without this it could take the role's
    credentials; the host's own boot, as root, still reads its secrets. Loaded at every start of the unit.
    `blocked`: the cloud's host addresses (the metadata service, and Azure's wireserver too);
    `keep`: what the edge's user may still ask them (nft matches, such as `ip daddr 169.254.169.254 udp
    dport 53` where the metadata address is also the network's DNS resolver, as on Compute Engine)."""
    kept = "".join(f"    meta skuid {EDGE_UID} {match} accept\n" for match in keep)
    refused = "".join(f"    meta skuid {EDGE_UID} ip daddr {address} reject\n" for address in blocked)
    return f"""table inet sipedge_metadata
delete table inet sipedge_metadata
table inet sipedge_metadata {{
  chain out {{
    type filter hook output priority 0; policy accept;
{kept}{refused}  }}
}}
"""


# New TLS connections a source may open a second (with a burst), and all sources together: PJSIP keeps a closed
# socket's slot a while before its I/O queue frees it, so a source opening and closing in a row, under the cap on
# connections held, still empties the queue and aborts the edge (docs/sip.md#tls-in-the-cloud has the figures).
TLS_RATE_PER_SOURCE = (2, 8)
TLS_RATE_TOTAL = (16, 32)


def tls_firewall(port: int, trunks: Sequence[str] = ()) -> str:
    """nftables: at most 8 new TLS connections a source and 32 in all on `port` held at once, and opened at most
    TLS_RATE_PER_SOURCE a second a source and TLS_RATE_TOTAL in all (docs/sip.md#tls-and-srtp). This caps what one
    source (or a spoofed handshake's churn) may hold of PJSIP's 64 sockets or the front's connections, and how fast
    it may churn them. With `trunks` (the trunks' source networks, when a credential trunk opens the port to any
    address) those networks have the totals to themselves and every other source shares a second pair (16 held), so
    strangers cannot starve the trunks' TLS. Loaded with metadata_firewall's."""
    (source_rate, source_burst), (total_rate, total_burst) = TLS_RATE_PER_SOURCE, TLS_RATE_TOTAL
    per_source = f"limit rate over {source_rate}/second burst {source_burst} packets"
    new = f"tcp dport {port} ct state new"
    # Strangers' connections held at once: half the trunks' 32, so both together stay under PJSIP's 64 sockets.
    groups = {"ip saddr @trunks ": 32, "ip saddr != @trunks ": 16} if trunks else {"": 32}
    named = (f"  set trunks {{ type ipv4_addr; flags interval; elements = {{ {', '.join(trunks)} }}; }}\n"
             if trunks else "")
    totals = "".join(f"    {new} {g}limit rate over {total_rate}/second burst {total_burst} packets drop\n"
                     for g in groups)
    counts = "".join(f"    {new} {g}ct count over {held} drop\n" for g, held in groups.items())
    return f"""table inet sipedge_tls
delete table inet sipedge_tls
table inet sipedge_tls {{
  set per_source {{ type ipv4_addr; size 65535; flags dynamic; }}
  set rate_per_source {{ type ipv4_addr; size 65535; flags dynamic,timeout; timeout 1m; }}
{named}  chain input {{
    type filter hook input priority 0; policy accept;
    {new} update @rate_per_source {{ ip saddr {per_source} }} drop
{totals}    {new} add @per_source {{ ip saddr ct count over 8 }} drop
{counts}  }}
}}
"""


SECRET_TRIES = 6


def _tried(attempt: str, done: str, failed: str, gave_up: str, tries: int) -> str:
    """bash: `attempt` (a condition) tried `tries` times, 2, 4, 8, … s apart, `done` (lines) once it holds;
    else `failed` said each time and `gave_up` at the end, and the boot exits non-zero."""
    return f"""  for try in $(seq 1 {tries}); do
    if {attempt}; then
{done}      return 0
    fi
    echo "sipedge boot: {failed} (try $try of {tries})" >&2
    [ "$try" -lt {tries} ] && sleep $((2 ** try))
  done
  echo "sipedge boot: {gave_up}" >&2
  exit 1"""


def pull_function(login: str, image: str, tries: int) -> str:
    """bash: `pull_image` signs in to the registry (`login`, a pipeline handing podman a token through stdin)
    and pulls `image`, tried as read_secret's reads are (a grant on the repository, made seconds before the
    host, may not be usable yet), or fails the boot."""
    loop = _tried(f"{login} && podman pull {image}", "", "pulling the dispatcher image failed",
                  "the dispatcher image could not be pulled; the edge is not started (the host's grant)", tries)
    return f"""pull_image() {{
  local try
{loop}
}}
pull_image"""


def read_secrets_function(tries: int = SECRET_TRIES) -> str:
    """bash: `read_secret NAME` appends NAME=value to the new env file, or fails the boot. A fetch's failure
    inside `printf "$(fetch NAME)"` would not stop the script (set -e skips a substitution in a command's
    arguments), and the edge would restart forever on an empty value; an assignment's status does stop it.
    An instance role is often not yet usable seconds after it is made (IAM propagates), so each secret
    is tried `tries` times, 2, 4, 8, … s apart (SECRET_TRIES: ~1 min in all), before the boot exits non-zero:
    on a first boot the edge's unit is never written; on a later one (Compute Engine reruns the script at
    every boot) the edge keeps the env file of the last boot that read every secret (NEW_SECRETS)."""
    return _secret_reader("read_secret", f"      printf '%s=%s\\n' \"$1\" \"$value\" >> {NEW_SECRETS}\n", tries)


def read_secret_files_function(tries: int = SECRET_TRIES) -> str:
    """bash: `read_secret_file NAME FILE` writes one secret (a PEM) to FILE.new, the edge's user's alone (0400),
    or fails the boot as read_secret does; the boot renames every FILE.new over FILE once all were read. The
    value passes through printf, a builtin: on no command line, in no file but its own. Written by a fresh file
    (`rm -f`, then `install` from stdin), never through a link found at FILE.new."""
    return _secret_reader("read_secret_file", f"""      rm -f "$2.new"
      printf '%s\\n' "$value" | {_INSTALL_EDGES} /dev/stdin "$2.new"
""", tries)


def _secret_reader(function: str, done: str, tries: int) -> str:
    """bash: `function NAME …` reads secret NAME (`tries` times) and runs `done` with it in $value."""
    loop = _tried('value=$(fetch "$1") && [ -n "$value" ]', done, "reading $1 from the secret store failed",
                  "$1 could not be read; the edge is not started (the host's role, or the secret)", tries)
    return f"""{function}() {{
  local value try
{loop}
}}"""


@dataclass(frozen=True)
class HostSteps:
    """What a cloud's boot does its own way; the rest of the script is every cloud's."""
    packages: str  # Debian packages beside podman (the cloud's CLI, or curl)
    fetch_function: str  # bash: `fetch NAME` prints one secret's value from the cloud's store
    registry_login: str  # bash: a pipeline that hands `podman login` the registry's token through stdin
    secret_tries: int = SECRET_TRIES
    pull_tries: int = 1  # above 1: the login and pull retried as the secrets are (pull_function)
    metadata_keep: tuple[str, ...] = ()  # metadata_firewall's `keep`
    metadata_blocked: tuple[str, ...] = (METADATA,)  # metadata_firewall's `blocked`
    apt_over_https: bool = False  # APT_OVER_HTTPS first: the host has no port 80 out


# Each cloud's limit on the decoded boot script, from its API reference: Azure's customData "maximum length
# of the binary array is 65535 bytes"; EC2's "User data is limited to 16 KB, in raw form, before it is
# base64-encoded"; a Compute Engine metadata value's "size must be less than or equal to 262144 bytes".
BOOT_LIMITS = {"azure": ("customData", 65_535), "aws": ("user data", 16_384), "gcp": ("startup-script", 262_144)}


def fitting(script: str, *, cloud: str, edge: SipEdgeSettings) -> str:
    """`script`, refused when over `cloud`'s limit: the VM is deleted before its replacement is created, so
    a script the cloud would refuse must stop the program before that (at preview, or before the VM's step)."""
    field, limit = BOOT_LIMITS[cloud]
    numbers = sum(len(trunk.numbers) for trunk in edge.key.trunks)
    size = len(script.encode())
    cas = edge.key.tls_ca_certificates
    # The CAs are written from the script (not secret): a bundle of them takes a few kB of EC2's 16.
    also = (f"; its tlsCaCertificates take {len(_ca_file(cas).encode()):,} bytes (name only the CAs the trunks "
            "use)"
            if cas else "")
    if size > limit:
        raise SettingsError(f"Invalid stack configuration: sipEdge makes a boot script of {size:,} bytes, over "
                            f"{cloud}'s {limit:,}-byte {field} limit; its trunks map {numbers:,} numbers (each "
                            "line of the edge's file): map fewer numbers to this stack's edge, or give part of "
                            f"them to another stack's edge{also}")
    return script


def edge_boot_script(edge: SipEdgeSettings, cloud: str, *, config: str, image: str, steps: HostSteps,
                     secrets: Sequence[str]) -> str:
    """boot_script for `edge` (Kamailio when its front runs: several workers, or an inbound credential; its drain),
    refused past `cloud`'s limit (fitting)."""
    return fitting(boot_script(config=config, image=image, steps=steps, secrets=secrets,
                               kamailio=edge.front, drain_seconds=edge.drain_seconds, tls_port=edge.key.tls_port,
                               tls_ca=edge.key.tls_ca_certificates, tls_trunks=edge.named_sources), cloud=cloud,
                   edge=edge)


def refused_now(script: Callable[[list[str]], str], count: int) -> None:
    """`script` (a cloud's boot script from its outputs' values, which `fitting` checks) run once now on the
    shortest stand-ins: at a preview that builds a new image those values are unknown and the script is never
    made, yet a script over the limit on stand-ins is over it on any values, and must be refused then."""
    script(["https://x", "10.0.0.1", "10.0.0.1", "x"] + ["x"] * (count - 4))


def boot_script(*, config: str, image: str, steps: HostSteps, secrets: Sequence[str], kamailio: bool,
                drain_seconds: int, tls_port: int | None = None, tls_ca: str | None = None,
                tls_trunks: Sequence[str] = ()) -> str:
    """A root bash script: podman (and the cloud's `steps.packages`) from Debian, the dispatcher image
    pulled (the registry's token through stdin), the edge's image built on it, its file and secrets
    written, its unit started: stopped with SIGTERM, which the edge drains on for `drain_seconds`, and given
    that with its stop before podman and then systemd kill it. The container stays in the unit's own cgroup
    (`--cgroups=split` with `Delegate=yes`, as Podman's Quadlet writes a container's unit): in podman's default
    scope a host's shutdown would signal it by itself, beside the unit's stop, and SIGKILL it after 90 s. A kill the
    unit sends itself (`systemctl kill`, a stop after `podman run` died) goes to `podman run` alone
    (`KillMode=mixed`, as Quadlet's), which hands it to the edge: a drain, not SIGTERM to every worker at once."""
    lines = "\n".join(f"read_secret_file {name} {TLS_FOLDER}/{TLS_FILES[name]}" if name in TLS_FILES
                      else f"read_secret {name}" for name in secrets)
    tls = _tls_steps(secrets, tls_port, tls_ca, steps.secret_tries, tls_trunks)
    https = f"{APT_OVER_HTTPS}\n" if steps.apt_over_https else ""
    pull = pull_function(steps.registry_login, image, steps.pull_tries) if steps.pull_tries > 1 \
        else f"{steps.registry_login}\npodman pull {image}"
    return f"""#!/bin/bash
# voicefleet SIP edge: python -m sipedge from the dispatcher image, configured by the stack; secrets read at boot.
set -euo pipefail
umask 077
export DEBIAN_FRONTEND=noninteractive
{https}apt-get update -qq
apt-get install -y -qq --no-install-recommends podman {steps.packages} ca-certificates nftables
{steps.fetch_function}
install -d -m 0700 {FOLDER} /root/sipedge-build
{pull}
cat > /root/sipedge-build/Containerfile <<'CONTAINERFILE'
{containerfile(image, kamailio=kamailio, tls=tls_port is not None)}CONTAINERFILE
podman build --pull=never -t {IMAGE} /root/sipedge-build
cat > {CONFIG} <<'EDGE'
{config}EDGE
chmod 0644 {CONFIG}
{read_secrets_function(steps.secret_tries)}
{tls.functions}: > {NEW_SECRETS}
{lines}
mv -f {NEW_SECRETS} {SECRETS}
{tls.files}cat > {FIREWALL} <<'NFT'
{metadata_firewall(steps.metadata_keep, steps.metadata_blocked)}{tls.firewall}NFT
cat > {UNIT} <<'UNIT'
[Unit]
Description=voicefleet SIP edge
After=network-online.target nftables.service
Wants=network-online.target

[Service]
ExecStartPre=/usr/sbin/nft -f {FIREWALL}
ExecStartPre=-/usr/bin/podman rm -f sipedge
ExecStart=/usr/bin/podman run --rm --name sipedge --cgroups=split --network host --env-file {SECRETS} \\
  {" ".join(CONTAINER_HARDENING)} -v {CONFIG}:{CONFIG}:ro {tls.mount}{IMAGE}
ExecStop=/usr/bin/podman stop -t {stop_seconds(drain_seconds)} sipedge
Delegate=yes
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={stop_seconds(drain_seconds) + PODMAN_STOP_SECONDS}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now sipedge
"""


@dataclass(frozen=True)
class _TlsSteps:
    functions: str = ""  # bash before the reads: read_secret_file, and the files' folder
    files: str = ""  # bash after them: each FILE.new renamed over FILE, the CAs written
    firewall: str = ""  # nftables beside the metadata rule: tls_firewall
    mount: str = ""  # podman's option: the folder, read-only


# A file of the edge's user's alone, made afresh: `install` unlinks what is at its destination, so a link planted
# there is replaced, not followed (and TLS_FOLDER, root's, lets the edge's user plant none).
_INSTALL_EDGES = f"install -m 0400 -o {EDGE_UID} -g {EDGE_UID}"


def _ca_file(cas: str) -> str:
    """bash: the CAs written to TLS_FOLDER, base64 in the script: no line of the user's text can end the heredoc."""
    encoded = base64.encodebytes(cas.encode()).decode()
    path = f"{TLS_FOLDER}/{TLS_CA_FILE}"
    return f"rm -f {path}\nbase64 -d <<'CAS' | {_INSTALL_EDGES} /dev/stdin {path}\n{encoded}CAS\n"


def _tls_steps(secrets: Sequence[str], port: int | None, cas: str | None, tries: int,
               trunks: Sequence[str] = ()) -> _TlsSteps:
    """With `port`: the certificate and key read from the secret store into TLS_FOLDER (root's, the edge's group's to
    read, 0750; its files the edge's user's, 0400), the CAs (not secret) written from the script, the connection caps,
    the folder mounted."""
    if port is None:
        return _TlsSteps()
    names = [name for name in secrets if name in TLS_FILES]
    renames = "".join(f"mv -f {TLS_FOLDER}/{TLS_FILES[n]}.new {TLS_FOLDER}/{TLS_FILES[n]}\n" for n in names)
    # The folder root's, readable by the edge's group: its user can plant no link for root's writes to follow.
    folder = f"install -d -m 0750 -o root -g {EDGE_UID} {TLS_FOLDER}\n"
    return _TlsSteps(
        functions=f"{read_secret_files_function(tries)}\n{folder}",
        files=renames + (_ca_file(cas) if cas else ""), firewall=tls_firewall(port, trunks),
        mount=f"-v {TLS_FOLDER}:{TLS_FOLDER}:ro ")
