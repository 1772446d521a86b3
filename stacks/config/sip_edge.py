"""The SIP edge's stack keys (`sipEdge`, docs/sip.md#in-the-cloud): its host, its workers, its RTP
range and its trunks, mapped one for one onto the edge's own TOML keys (sipedge/config.py), which
`render` writes and the check loads with the edge's own loader, so a stack never ships a file the
edge would refuse at boot.

What the edge's own file does not say is checked here too: each trunk's `sources` (its SIP) and
`mediaSources` (its calls' RTP), the security group's only senders, no wider than a /16 without the
trunk's opt-in; an outbound trunk's `destinations`; and an HTTPS dispatcher the edge can verify.

The file holds no secret, and neither does the key: a number names the dispatcher API key its calls
run as (a `name` of dispatcherApiKeys' `name:key`), a trunk's digest password is a secret of
`sipEdgeDigestPasswords` (by trunk name), the one its own INVITEs must answer with of
`sipEdgeInboundDigestPasswords`, and the edge's two credentials (its own, which it presents to
the dispatcher, and the control key the dispatcher presents to it) are derived for its control URL from
the dispatcher's SIP_EDGE_SECRET, which the stack makes (stacks/config/made_secrets.py) and hands to the
dispatcher alone (docs/sip.md#edge-credentials). They reach the edge's host only through the stack's
secret store, read at boot by the host's own role.

AWS (stacks/aws/sip_edge.py), GCP (stacks/gcp/sip_edge.py) and Azure (stacks/azure/sip_edge.py) run the edge
on a host of its own: RTP needs an address of its own per edge, a port range a load balancer's listeners do
not pass; Kubernetes (stacks/k8s/sip_edge.py) runs it as a pod on its node's network, on the nodes the team
keeps for it (`nodeSelector`, `nodeTaint`: stacks/config/sip_edge_nodes.py), told the address the trunks
reach them by (`publicAddress`). Each cloud's own keys (the host's size, `instanceType` on AWS,
`machineType` on GCP, `vmSize` on Azure; the nodes on Kubernetes) are refused on the others."""

from __future__ import annotations

import ipaddress
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi

from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.settings import KEY_NAME, KEY_NAME_RULE
from sipedge.drain import DEFAULT_DRAIN_SECONDS
from sipedge.inbound_password import short_inbound_password
from stacks.config import made_secrets
from stacks.config.k8s_registry import REGISTRY_KEY as K8S_REGISTRY_KEY
from stacks.config.masked import is_stand_in
from stacks.config.reader import Reader
from stacks.config.sip_edge_nodes import DOCS as NODES_DOCS
from stacks.config.sip_edge_nodes import NODE_ADDRESS_VARIABLE, check_nodes
from stacks.config.sip_edge_sources import (
    CREDENTIAL_SOURCE_MARK,
    credential_only_trunk,
    open_note,
    signalling_sources,
)
from voicefleet_settings.call_policy import ANY_NUMBER

if TYPE_CHECKING:
    from stacks.config.sip_edge_keys import PriceKey, SipEdgeKey, TrunkKey

KEY = "sipEdge"
DIGEST_PASSWORDS_KEY = "sipEdgeDigestPasswords"
INBOUND_DIGEST_PASSWORDS_KEY = "sipEdgeInboundDigestPasswords"  # the passwords trunks' own INVITEs must answer with
# The edge's TLS certificate (its chain after it) and private key, PEM, with sipEdge.tlsPort: secrets, which reach
# the host through the secret store and are written there as files only the edge's user reads.
TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY = "sipEdgeTlsCertificate", "sipEdgeTlsPrivateKey"
TLS_CERTIFICATE_VARIABLE = "SIP_EDGE_TLS_CERTIFICATE"
TLS_PRIVATE_KEY_VARIABLE = "SIP_EDGE_TLS_PRIVATE_KEY"  # noqa: S105 - a variable's name
TLS_FOLDER = "/etc/sipedge/tls"  # on the host and in the container alike (mounted read-only)
# Each secret file's name in TLS_FOLDER, by its secret store entry; the CAs (tlsCaCertificates) are not secret.
TLS_FILES = {TLS_CERTIFICATE_VARIABLE: "edge.crt", TLS_PRIVATE_KEY_VARIABLE: "edge.key"}
TLS_CA_FILE = "trunk-cas.pem"
SECRET_VARIABLE = "SIP_EDGE_SECRET"  # noqa: S105 - a variable's name: the dispatcher's alone
EDGE_CREDENTIAL_VARIABLE = "SIP_EDGE_CREDENTIAL"  # the edge's, presented to the dispatcher (edge_credential_env)
CONTROL_KEY_VARIABLE = "SIP_EDGE_CONTROL_KEY"  # the edge's, what the dispatcher presents to it (control_secret_env)
CREDENTIALS = (CONTROL_KEY_VARIABLE, EDGE_CREDENTIAL_VARIABLE)
URL_VARIABLE = "SIP_EDGE_URL"
MADE_SECRET = "sip-edge-secret"  # noqa: S105 - a resource's name, not a secret
CONTROL_PORT = 5080  # the edge's control API (docs/sip.md#outbound-calls), every edge's, on its private address only
SIP_PORT = 5060
TLS_DEFAULT_PORT = 5061  # a sips: or ;transport=tls URI's port when it names none (RFC 3261)


def tls_rule_mark(port: int) -> str:
    """What each cloud's SIP-over-TLS rule says in its description: the policy pack takes TCP on the edge only
    from a rule that names its own port so (policy/rules.py SIP_EDGE_TLS_MARK)."""
    return f"SIP over TLS on TCP {port}"


DOCS = "docs/sip.md#in-the-cloud"
# Twilio's media range for Elastic SIP Trunking (all edges, UDP 10000-60000 at its end): the example a
# trunk's mediaSources names (https://www.twilio.com/docs/sip-trunking/ip-addresses).
TWILIO_MEDIA = "168.86.128.0/18"
# The widest network a trunk's sources or mediaSources may name without its opt-in: a carrier's published
# ranges are narrower (Twilio's media range is a /18), and 0.0.0.0/1 + 128.0.0.0/1 is the internet.
WIDEST_PREFIX = 16
_PORTS = re.compile(r"^(\d{4,5})-(\d{4,5})$")
# tlsCaCertificates: PEM certificates and nothing else (the host writes them from its script, as they are).
_PEM_CERTIFICATES = re.compile(r"\s*(-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*)+")
_ARM = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")  # Graviton families: c7g, t4g, m7gd, c7gn
# Compute Engine's Arm series (Tau T2A, Axion C4A and N4A): PJSIP's wheel and the image are x86_64.
_GCP_ARM = re.compile(r"^(t2a|c4a|n4a)-")
# Azure's Arm sizes carry a `p` among their features (Standard_D2ps_v5, Standard_E4pds_v6, Standard_B2pts_v2).
_AZURE_ARM = re.compile(r"^Standard_[A-Z]+\d+[a-oq-z]*p[a-z]*_")
HOSTS = ("aws", "gcp", "azure", "k8s")  # the clouds whose stacks run the edge
# The host's size key on each VM cloud, and the pattern of its Arm sizes (PJSIP's wheel and the image are x86_64).
SIZE_KEYS = {"aws": ("instanceType", "instance_type", _ARM), "gcp": ("machineType", "machine_type", _GCP_ARM),
             "azure": ("vmSize", "vm_size", _AZURE_ARM)}
# The keys only one cloud's edge has: the host's size on a VM cloud, the nodes and their address on Kubernetes.
CLOUD_KEYS = {**{cloud: (size[0],) for cloud, size in SIZE_KEYS.items()},
              "k8s": ("nodeSelector", "nodeTaint", "publicAddress")}


@dataclass(frozen=True)
class SipEdgeSettings:
    key: SipEdgeKey
    rtp_port: int
    rtp_port_count: int
    # The edge's own secret store entries (variable -> value): its numbers' keys and trunks' digest passwords.
    secrets: Mapping[str, pulumi.Output[str]] = field(repr=False)

    cloud: str = "aws"  # the cloud whose stack runs the edge (HOSTS)
    # SIP_EDGE_SECRET, the dispatcher's alone: the edge gets only what `credentials` derives from it.
    deployment_secret: pulumi.Output[str] | None = field(default=None, repr=False)

    def credentials(self, control_url: pulumi.Input[str]) -> dict[str, pulumi.Output[str]]:
        """The edge's two credentials, derived from the deployment secret for the URL the dispatcher lists it by."""
        if self.deployment_secret is None:
            raise ValueError("the SIP edge's credentials need the deployment secret (load makes it)")
        both = pulumi.Output.all(self.deployment_secret, control_url)
        control = both.apply(lambda v: EdgeSecret(v[0]).control_credential(v[1]))
        own = both.apply(lambda v: EdgeSecret(v[0]).edge_credential(v[1]))
        return {CONTROL_KEY_VARIABLE: pulumi.Output.secret(control),
                EDGE_CREDENTIAL_VARIABLE: pulumi.Output.secret(own)}

    @property
    def host_type(self) -> str:
        """The host's size in its cloud's words: an EC2 instance type, a Compute Engine machine type, an
        Azure VM size, or on Kubernetes the nodes the pod is kept to."""
        if self.cloud == "k8s":
            return "node labelled " + ", ".join(f"{k}={v}" for k, v in sorted(self.key.node_selector.items()))
        return str(getattr(self.key, SIZE_KEYS[self.cloud][1]))

    @property
    def sources(self) -> dict[str, str]:
        """Every trunk's source networks (the only senders the SIP port admits), each with why a rule for it is
        wide ("" for none): a trunk's allowAnySource (wider than WIDEST_PREFIX), or any address for a trunk with an
        inbound credential and no sources (stacks/config/sip_edge_sources.py)."""
        return signalling_sources(self.key, _networks(t.sources for t in self.key.trunks))

    @property
    def named_sources(self) -> list[str]:
        """The trunks' own source networks, with no credential trunk's any-address: where a TLS cap for the trunks
        alone applies when a credential trunk opens tlsPort to anyone (sip_edge_host.tls_firewall); none without."""
        if credential_only_trunk(self.key) is None:
            return []
        return [n for n, why in self.sources.items() if why != CREDENTIAL_SOURCE_MARK]

    @property
    def udp_egress(self) -> list[str]:
        """Where the edge sends UDP: the trunks' sources (SIP to a termination URI or registrar) and media networks,
        never the any-address a credential trunk's callers need for SIP in: the clouds' stateful rules let out what
        goes back on a caller's own tracked flow, and no new one (docs/sip.md#inbound-digest)."""
        return sorted({*(n for n, why in self.sources.items() if why != CREDENTIAL_SOURCE_MARK), *self.media_sources})

    @property
    def tls_egress(self) -> dict[str, tuple[int, ...]]:
        """Where the edge dials over TLS: each source network of a trunk whose termination URI or registrar is
        `sips:` or `;transport=tls`, with the ports those URIs name (5061 where one names none). The clouds open
        TCP out to these alone, so a compromised edge reaches no other TCP service of the trunks' or the VPC's."""
        found: dict[str, set[int]] = {}
        for trunk in self.key.trunks:
            ports = {_tls_port(uri) for uri in (trunk.termination_uri, trunk.registrar) if _tls_uri(uri)}
            for network in _networks([trunk.sources]) if ports else ():
                found.setdefault(network, set()).update(ports)
        return {network: tuple(sorted(ports)) for network, ports in sorted(found.items())}

    @property
    def media_sources(self) -> dict[str, bool]:
        """Every trunk's media networks (the only senders the RTP ports admit), each with whether a trunk's
        allowAnyMediaSource asked for it."""
        return _networks(t.media_sources for t in self.key.trunks)

    @property
    def rtp_ports_used(self) -> tuple[int, int]:
        """The first and last RTP port the workers take: each an even share of the range
        (sipedge/worker_place.py `rtp_share`), so a range that does not split evenly leaves a few unused."""
        share = self.rtp_port_count // self.key.workers // 2 * 2 if self.front else self.rtp_port_count
        return self.rtp_port, self.rtp_port + self.key.workers * share - 1

    @property
    def worker_sip_ports(self) -> range:
        """The workers' SIP ports on loopback behind the front (none without it): `render` leaves worker_sip_port
        out, so the edge's default, the port after sip_port (sipedge/config.py `_worker_sip_port`)."""
        return range(SIP_PORT + 1, SIP_PORT + 1 + self.key.workers) if self.front else range(0)

    @property
    def worker_control_ports(self) -> range:
        """The workers' control APIs' TCP ports on loopback behind the front (none without it): `render` leaves
        worker_control_port out, so the edge's default, the ports after control_port (sipedge/config.py
        `_worker_control_port`)."""
        return range(CONTROL_PORT + 1, CONTROL_PORT + 1 + self.key.workers) if self.front else range(0)

    @property
    def inbound_digest_trunk(self) -> str | None:
        return inbound_digest_trunk(self.key)

    @property
    def front(self) -> bool:
        """Whether the edge runs Kamailio before its workers: the edge's own rule (sipedge/config.py `front_runs`)."""
        from sipedge.config import front_runs

        return front_runs(self.key.workers, self.inbound_digest_trunk is not None)

    @property
    def drain_seconds(self) -> int:
        """How long the edge's stop lets its calls in flight go on: the key's, else the edge's own default."""
        return DEFAULT_DRAIN_SECONDS if self.key.drain_seconds is None else self.key.drain_seconds

    @property
    def calls(self) -> int:
        """Calls held at once (docs/sip.md#capacity): 3 a PJSIP process."""
        return 3 * self.key.workers

    def secret_names(self) -> list[str]:
        """What the edge's host reads: its own secrets and its two credentials, never SIP_EDGE_SECRET."""
        return sorted({*self.secrets, *CREDENTIALS})


def inbound_digest_trunk(key: SipEdgeKey) -> str | None:
    """The first trunk with an inbound digest credential, which only the edge's Kamailio front checks; None: none."""
    return next((t.name for t in key.trunks if t.inbound_digest_username is not None), None)


def _networks(lists: Iterable[tuple[str, ...]]) -> dict[str, bool]:
    found: dict[str, bool] = {}
    for sources in lists:
        for source in sources:
            network = ipaddress.ip_network(source, strict=False)
            found[str(network)] = network.prefixlen < WIDEST_PREFIX
    return dict(sorted(found.items()))


def api_key_variable(name: str) -> str:
    """The variable (and secret store entry) holding one dispatcher API key for the edge."""
    return "SIP_EDGE_API_KEY_" + name.upper().replace("-", "_")


def digest_variable(trunk: str) -> str:
    return "SIP_EDGE_DIGEST_" + trunk.upper().replace("-", "_")


def inbound_digest_variable(trunk: str) -> str:
    return "SIP_EDGE_INBOUND_DIGEST_" + trunk.upper().replace("-", "_")


def load(cfg: Reader, cloud: str, api_keys: pulumi.Output[str], rotation: made_secrets.Rotation,
         platforms: tuple[str, ...]) -> SipEdgeSettings | None:
    raw = cfg.structured(KEY)
    if raw is None or raw == {}:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, dict):
        raise cfg.fail(KEY, f"must be a map ({{enabled, trunks: [...]}}; {DOCS})")
    from pydantic import ValidationError  # with the models: only a stack that sets the key pays for them

    from stacks.config.sip_edge_keys import SipEdgeKey

    try:
        key = SipEdgeKey.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        raise cfg.fail(KEY, f"{problems} ({DOCS})") from None
    if not key.enabled:
        return None
    if cloud not in HOSTS:
        raise cfg.fail(KEY, f"enabled: an AWS, GCP, Azure or Kubernetes stack runs the SIP edge, not a {cloud} one. "
                            "Run `python -m sipedge` on a VM of your own with a public address, its dispatcher_url "
                            f"this stack's dispatcherUrl ({DOCS}, and docs/sip.md#configuration)")
    _check_host(cfg, key, cloud, platforms)
    if cloud == "aws":
        _check_https(cfg)  # a Cloud Run URL is HTTPS under Google's own certificate
    low, high = _ports(cfg, key.rtp_ports)
    _check_trunks(cfg, key)
    tls = _tls_secrets(cfg, key, cloud, (low, high))
    secrets = {**tls,**_api_keys(cfg, key, api_keys),
               **_passwords(cfg, DIGEST_PASSWORDS_KEY, "digestUsername", digest_variable,
                            {t.name for t in key.trunks if t.digest_username is not None}),
               **_passwords(cfg, INBOUND_DIGEST_PASSWORDS_KEY, "inboundDigestUsername", inbound_digest_variable,
                            {t.name for t in key.trunks if t.inbound_digest_username is not None},
                            short_inbound_password)}
    # The dispatcher's, from which the edge's credentials (its control API's, a price's proof) are derived.
    made = made_secrets.made(MADE_SECRET, rotation.generation, rotation.ready)
    found = SipEdgeSettings(key, low, high - low + 1, secrets, cloud, deployment_secret=made)
    _check_with_the_edge(cfg, found)
    if tls:
        _check_pair_with_the_edge(cfg, found, tls)
    pulumi.log.info(capacity_note(found))
    if (opened := open_note(key)) is not None:
        pulumi.log.warn(opened)
    return found


def _check_host(cfg: Reader, key: SipEdgeKey, cloud: str, platforms: tuple[str, ...]) -> None:
    """The host in this cloud's words only, and an x86_64 one (the image's and PJSIP's wheel's build)."""
    from stacks.config.sip_edge_keys import SipEdgeKey

    given = {SipEdgeKey.model_fields[f].alias or f for f in key.model_fields_set}
    for other, keys in CLOUD_KEYS.items():
        if other != cloud and (found := sorted(given & set(keys))):
            mine = ("its nodes are nodeSelector and nodeTaint, its address publicAddress" if cloud == "k8s"
                    else f"its host's size is {CLOUD_KEYS[cloud][0]}")
            raise cfg.fail(KEY, f"{found[0]}: this {cloud} stack's edge has no such key; {mine} "
                                f"({NODES_DOCS if cloud == 'k8s' else DOCS})")
    if cloud == "k8s":
        if "linux/amd64" not in platforms:
            raise cfg.fail(KEY, "runs the dispatcher image's x86_64 build (with PJSIP's x86_64 wheel): keep "
                                "linux/amd64 in platforms")
        check_nodes(cfg, key.node_selector, key.node_taint, key.public_address)
        if cfg.optional(K8S_REGISTRY_KEY) is None:
            raise cfg.fail(KEY, "enabled: a Kubernetes stack's edge runs an image the stack builds on the "
                                "dispatcher's (PJSIP's wheel, and Kamailio for several workers or an inbound digest "
                                f"credential) and pushes to {K8S_REGISTRY_KEY}: set {K8S_REGISTRY_KEY} (the stack "
                                "then builds the dispatcher's image too), or run the edge on an AWS, GCP or Azure "
                                f"stack ({NODES_DOCS})")
        return
    mine, field_name, arm = SIZE_KEYS[cloud]
    value = str(getattr(key, field_name))
    if "linux/amd64" not in platforms or arm.match(value):
        example = SipEdgeKey.model_fields[field_name].default
        raise cfg.fail(KEY, f"runs the dispatcher image's x86_64 build (with PJSIP's x86_64 wheel): keep linux/amd64 "
                            f"in platforms and give it an x86_64 {mine} ({example}; got {value})")


def _tls_secrets(cfg: Reader, key: SipEdgeKey, cloud: str, rtp: tuple[int, int]) -> dict[str, pulumi.Output[str]]:
    """With tlsPort, the edge's certificate and key (secrets, by their store entries); what cannot work is refused
    now, naming the way forward, rather than by the edge at the host's boot."""
    certificate = cfg.secret(TLS_CERTIFICATE_KEY, required=False)
    private_key = cfg.secret(TLS_PRIVATE_KEY_KEY, required=False)
    if (certificate is None) != (private_key is None):
        missing = TLS_PRIVATE_KEY_KEY if private_key is None else TLS_CERTIFICATE_KEY
        raise cfg.fail(missing, f"is required with the other TLS value ({TLS_CERTIFICATE_KEY} and "
                                f"{TLS_PRIVATE_KEY_KEY}, PEM, both --secret: pulumi config set --secret "
                                f"{missing} < FILE)")
    calling = next((t.name for t in key.trunks if _tls_uri(t.termination_uri) or _tls_uri(t.registrar)), None)
    if key.tls_port is None:
        given = [name for name, value in ((TLS_CERTIFICATE_KEY, certificate), ("tlsCaCertificates",
                 key.tls_ca_certificates), ("tlsVerifyClient", key.tls_verify_client or None)) if value is not None]
        secured = next((t.name for t in key.trunks if t.srtp != "off"), calling)
        if given or secured is not None:
            what = given[0] if given else f"trunk {secured}'s srtp or its sips:/transport=tls URI"
            raise cfg.fail(KEY, f"{what} needs tlsPort (SIP over TLS, 5061 is usual): set sipEdge.tlsPort, or leave "
                                f"TLS out ({DOCS})")
        return {}
    if cloud == "k8s":
        # The edge opens tls_port only behind a cap on each source's new connections a second (tls_port_firewalled):
        # on a VM the host's nftables table holds it (stacks/shared/sip_edge_host.py tls_firewall); a pod can load
        # no table on its node (that needs NET_ADMIN, which its admission refuses), and a table the team loads by hand
        # is one the stack cannot see (the node fence sees refusals of its own connections, not a rate).
        raise cfg.fail(KEY, "tlsPort: the edge opens tls_port only behind a firewall that caps each source's new "
                            "connections a second, which a VM's host loads (docs/sip.md#tls-and-srtp); a Kubernetes "
                            "pod cannot load one on its node, and the stack cannot check that one is there: run the "
                            "TLS trunks on an AWS, GCP or Azure stack's edge, or `python -m sipedge` on a VM of your "
                            f"own ({NODES_DOCS})")
    low, high = rtp
    if key.tls_port in (SIP_PORT, CONTROL_PORT) or low <= key.tls_port <= high:
        raise cfg.fail(KEY, f"tlsPort: {key.tls_port} is taken (SIP {SIP_PORT}/udp, the control API {CONTROL_PORT}, "
                            f"RTP {low}-{high}): give another port, 5061 is TLS's usual one")
    if certificate is None or private_key is None:
        raise cfg.fail(KEY, f"tlsPort needs the edge's certificate and private key (PEM): pulumi config set --secret "
                            f"{TLS_CERTIFICATE_KEY} < edge.crt and pulumi config set --secret {TLS_PRIVATE_KEY_KEY} "
                            f"< edge.key ({DOCS})")
    if key.tls_ca_certificates is not None and not _PEM_CERTIFICATES.fullmatch(key.tls_ca_certificates):
        raise cfg.fail(KEY, "tlsCaCertificates: must be PEM certificates only (-----BEGIN CERTIFICATE----- … "
                            "-----END CERTIFICATE-----, one after another): the CAs, not a key or a chain's text")
    from stacks.config.tls_certificate import ca_bundle_problem

    if key.tls_ca_certificates is not None and (problem := ca_bundle_problem(key.tls_ca_certificates)) is not None:
        raise cfg.fail(KEY, f"tlsCaCertificates: {problem}")
    if key.tls_verify_client and not key.tls_ca_certificates:
        raise cfg.fail(KEY, "tlsVerifyClient needs tlsCaCertificates, the CAs (PEM) a caller's certificate chains to")
    from sipedge.config import front_runs

    if calling is not None and front_runs(key.workers, inbound_digest_trunk(key) is not None):
        raise cfg.fail(KEY, f"trunks.{calling}: places calls or registers over TLS (a sips: or ;transport=tls URI), "
                            "which the edge does only without its Kamailio front (the front never dials out over "
                            "TLS): give that trunk workers: 1 and no inboundDigestUsername on this edge, or a UDP "
                            f"URI ({DOCS})")
    if calling is not None and not key.tls_ca_certificates:
        raise cfg.fail(KEY, f"trunks.{calling}: calls over TLS check the trunk's certificate against "
                            "tlsCaCertificates (the edge never uses the system's bundle): set it to the CA its "
                            f"provider names ({DOCS})")
    return {TLS_CERTIFICATE_VARIABLE: pulumi.Output.secret(certificate),
            TLS_PRIVATE_KEY_VARIABLE: pulumi.Output.secret(private_key)}


def _tls_port(uri: str | None) -> int:
    """The port a TLS URI dials: the one it names, else 5061 (TLS's own; a name's SRV records may say another,
    which the trunk's URI should then name)."""
    from sipedge.front_config import _host_port  # noqa: PLC2701 - one reading of a URI's host and port, the edge's

    rest = str(uri).split(":", 1)[-1]
    return _host_port(rest.split("@", 1)[-1].split(";", 1)[0], TLS_DEFAULT_PORT)[1]


def _tls_uri(uri: str | None) -> bool:
    """The edge's own rule (sipedge/config.py): `sips:…` or `…;transport=tls` goes over TLS."""
    from sipedge.config import _tls_uri as over_tls  # noqa: PLC2701 - one rule, the edge's

    return over_tls(uri)


def _check_https(cfg: Reader) -> None:
    """An AWS stack's dispatcher URL is HTTPS, under a certificate the edge can verify."""
    if cfg.optional("certificateArn") is None:  # the dispatcher's URL is plain HTTP (allowPlainHttp)
        raise cfg.fail(KEY, "enabled: the edge calls the dispatcher through its public URL with each number's API "
                            "key and the control secret, which a plain-HTTP stack (allowPlainHttp) sends across the "
                            f"internet in clear: set certificateArn (HTTPS), or leave the edge off ({DOCS})")
    if cfg.optional("dispatcherDomain") is None:  # the URL would be the ALB's own name, which no certificate covers
        raise cfg.fail(KEY, "enabled: the edge verifies the dispatcher's certificate, which covers dispatcherDomain, "
                            f"not the load balancer's own name: set dispatcherDomain ({DOCS})")


def capacity_note(edge: SipEdgeSettings) -> str:
    """What the plan says the edge holds (docs/sip.md#capacity: 3 calls a PJSIP process, 17 workers 50 calls
    at 1.2-1.8 % of a core a call and ~65 MB a worker)."""
    more = "; more take workers (3 calls each) or a second edge" if edge.key.workers == 1 else ""
    front = (f" behind Kamailio (trunk {edge.inbound_digest_trunk}'s inbound digest credential)"
             if edge.front and edge.key.workers == 1 else " behind Kamailio" if edge.front else "")
    return (f"SIP edge: {edge.key.workers} worker(s){front} on one {edge.host_type} hold {edge.calls} calls at "
            f"once (3 a worker, docs/sip.md#capacity), each ~2 % of a vCPU and ~65 MB a worker{more}; its "
            "address is the stack output sipEdgeOriginationUri, the trunk's origination URI"
            f"{' (sipEdgeOriginationUriTls over TLS)' if edge.key.tls_port is not None else ''}")


def _ports(cfg: Reader, text: str) -> tuple[int, int]:
    ports = _PORTS.match(text)
    low, high = (int(ports[1]), int(ports[2])) if ports else (0, 0)
    if not ports or not 1024 <= low < high <= 65535 or low % 2:
        raise cfg.fail(KEY, f"rtpPorts: must be a range like 40000-40399 above 1023 starting on an even port "
                            f"(got {text!r})")
    return low, high


def _check_widths(cfg: Reader, where: str, ranges: Sequence[str], allowed_wide: bool, what: str, why: str) -> None:
    """Each of `ranges` a network, none wider than WIDEST_PREFIX unless the trunk's opt-in says so."""
    for source in ranges:
        network = _network(cfg, where, source, what)
        if network.prefixlen < WIDEST_PREFIX and not allowed_wide:
            raise cfg.fail(KEY, f"{where}: {source} is wider than /{WIDEST_PREFIX}: {why}")


def _check_trunks(cfg: Reader, key: SipEdgeKey) -> None:
    for trunk in key.trunks:
        where = f"trunks.{trunk.name}"
        _check_widths(cfg, f"{where}.sources", trunk.sources, trunk.allow_any_source,
                      "the trunk's published signalling addresses",
                      "it lets anyone in it send INVITEs to the edge's SIP port, and toll-fraud scanners do within "
                      "minutes: list the trunk's published signalling ranges, or set allowAnySource: true on the "
                      "trunk to mean it")
        if not trunk.sources and trunk.inbound_digest_username is None:
            # A trunk that only places calls still hears from its far end: the callee's BYE comes minutes into a
            # call, long after the security group's tracking of the edge's own INVITE has expired (30-180 s).
            raise cfg.fail(KEY, f"{where}.sources: list the networks the trunk's SIP comes from (its published "
                                "signalling ranges); a trunk that only places calls needs them too, or the far "
                                "end's BYE is dropped and the call, its slot and its bot live on. A trunk with "
                                "inboundDigestUsername may leave them out, opening SIP to any address for its "
                                "credential (docs/sip.md#inbound-digest)")
        if not trunk.media_sources:
            raise cfg.fail(KEY, f"{where}.mediaSources: list the networks the trunk's calls' RTP comes from (its "
                                f"published media ranges: Twilio's is {TWILIO_MEDIA}); only they reach the edge's "
                                "RTP ports")
        _check_widths(cfg, f"{where}.mediaSources", trunk.media_sources, trunk.allow_any_media_source,
                      "the trunk's published media addresses",
                      "anyone in it can send RTP to a call's port, and PJSIP then sends the bot's side of the call "
                      f"to them: list the trunk's published media ranges (Twilio's is {TWILIO_MEDIA}), or set "
                      "allowAnyMediaSource: true on the trunk to mean it")
        _check_destinations(cfg, where, trunk)
        for number, name in trunk.numbers.items():
            if not KEY_NAME.fullmatch(name):
                raise cfg.fail(KEY, f"{where}.numbers.{number}: {name!r} must name a dispatcherApiKeys key "
                                    f"(name:key), {KEY_NAME_RULE}: its calls run as that key")
    names = [t.name for t in key.trunks]
    if len(set(names)) != len(names):
        raise cfg.fail(KEY, "trunks: names must differ (outbound calls name their trunk)")


def _check_destinations(cfg: Reader, where: str, trunk: TrunkKey) -> None:
    """A trunk that places calls names where to (the edge's default is any number on earth, premium-rate
    ones included, so a leaked caller's key would be toll fraud), unless it says it means anywhere."""
    if trunk.termination_uri is None or trunk.allow_any_destination:
        return
    if not trunk.destinations or ANY_NUMBER in trunk.destinations:
        raise cfg.fail(KEY, f"{where}.destinations: a trunk with a terminationUri names the numbers its callers may "
                            "call (E.164 patterns such as +1* or +14155550100); without them, or with "
                            f"{ANY_NUMBER}, any caller key calls any number, premium-rate ones included: list them, "
                            "or set allowAnyDestination: true on the trunk to mean it")


def _network(cfg: Reader, where: str, source: str, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        network = ipaddress.ip_network(source, strict=True)
    except ValueError:
        raise cfg.fail(KEY, f"{where}: {source!r} is not a CIDR block such as 203.0.113.0/24 ({what})") from None
    if network.version == 6:
        raise cfg.fail(KEY, f"{where}: {source} is IPv6; the edge's host has an IPv4 address only")
    return network


def _api_keys(cfg: Reader, key: SipEdgeKey, api_keys: pulumi.Output[str]) -> dict[str, pulumi.Output[str]]:
    """Each named dispatcher key the numbers run as, taken from dispatcherApiKeys (a secret output)."""
    names = sorted({name for trunk in key.trunks for name in trunk.numbers.values()})
    return {api_key_variable(name): pulumi.Output.secret(api_keys.apply(partial(_named_key, cfg, name=name)))
            for name in names}


def _named_key(cfg: Reader, text: str, *, name: str) -> str:
    for part in text.split(","):
        found, colon, value = part.strip().partition(":")
        if colon and found == name and value.strip():
            return value.strip()
    if is_stand_in(text):
        return text  # an offline run sees no value: `pulumi up` checks the name
    raise cfg.fail(KEY, f"numbers name the API key {name!r}, which dispatcherApiKeys does not hold as {name}:KEY: "
                        "add it there, or name one it holds")


def _passwords(cfg: Reader, map_key: str, username_key: str, variable: Callable[[str], str],
               wanted: set[str], weak: Callable[[str], str | None] = lambda _: None) -> dict[str, pulumi.Output[str]]:
    """`map_key`'s secrets (trunk name -> password), one for each trunk with `username_key` (`wanted`), each by
    the variable `variable` names it for the edge; `weak` says why a password is refused (the edge's own rule:
    the edge's loader, run here, sees stand-ins)."""
    if cfg.raw(map_key) is None:
        values: Any = {}
    else:
        values = cfg.config.get_object(map_key)
        if values and not pulumi.runtime.is_config_secret(cfg.key(map_key)):
            raise cfg.fail(map_key, f"is stored in plain text: set each with pulumi config set --secret --path "
                                    f"'{map_key}.TRUNK' …")
    if not isinstance(values, dict):
        raise cfg.fail(map_key, "must be a map of trunk names to passwords")
    for name in sorted(set(values) - wanted):
        raise cfg.fail(map_key, f"has {name!r}, which no trunk of {KEY} with a {username_key} is")
    for name in sorted(wanted - set(values)):
        raise cfg.fail(map_key, f"needs {name!r}: trunk {name} has a {username_key} (pulumi config set --secret "
                                f"--path '{map_key}.{name}' …)")
    for name, value in values.items():
        if not isinstance(value, str) or not value or any(c in value for c in "\n\r\0"):
            raise cfg.fail(map_key, f"{name} must be a password of one line")
        if not is_stand_in(value) and (why := weak(value)) is not None:  # an offline run's: `pulumi up` checks it
            raise cfg.fail(map_key, f"{name} {why}")
    return {variable(name): pulumi.Output.secret(value) for name, value in sorted(values.items())}


def render(settings: SipEdgeSettings, *, dispatcher_url: str, sip_address: str | None, public_address: str,
           sip_port: int = SIP_PORT, control_port: int = CONTROL_PORT, address_variable: str | None = None,
           tls_folder: str = TLS_FOLDER) -> str:
    """The edge's TOML file (sipedge/config.py's keys): addresses, ports and variable names, no secret.
    A stack keeps the fixed ports its firewall opens; a test on loopback passes free ones instead.
    `address_variable` instead of `sip_address`: the variable that holds the host's address as the edge
    starts (a pod on its node's network), for SIP, RTP and the control API alike. With tlsPort, the
    certificate, key and CAs are files of `tls_folder` (the host writes them at boot), and the port is
    firewalled by the stack (the trunks' sources only) and the host (a connection cap a source)."""
    key = settings.key
    address = (f"sip_address = {_toml(sip_address)}" if address_variable is None
               else f"sip_address_env = {_toml(address_variable)}")
    lines = [f"dispatcher_url = {_toml(dispatcher_url)}", address,
             f"public_address = {_toml(public_address)}", f"sip_port = {sip_port}",
             f"rtp_port = {settings.rtp_port}", f"rtp_port_count = {settings.rtp_port_count}",
             f"workers = {key.workers}"]
    if key.answer_seconds is not None:
        lines.append(f"answer_seconds = {key.answer_seconds}")
    if key.drain_seconds is not None:
        lines.append(f"drain_seconds = {key.drain_seconds}")
    # The control API, whether or not a trunk places calls: the dispatcher's status asks every edge it lists
    # (an inbound-only edge that failed its boot shows there, not only as callers no one answers), and hands
    # it transfers. On the private address: the dispatcher reaches it inside the network, the firewall admits
    # it alone.
    control = (f"control_address = {_toml(sip_address)}" if address_variable is None
               else f"control_address_env = {_toml(address_variable)}")
    lines += [control, f"control_port = {control_port}", f"control_secret_env = {_toml(CONTROL_KEY_VARIABLE)}",
              f"edge_credential_env = {_toml(EDGE_CREDENTIAL_VARIABLE)}"]
    lines += _tls_lines(key, tls_folder)
    for trunk in key.trunks:
        lines += ["", "[[trunk]]", f"name = {_toml(trunk.name)}"]
        if trunk.sources:
            lines.append(f"sources = {_toml(list(trunk.sources))}")
        if trunk.numbers:
            numbers = ", ".join(f"{_toml(n)} = {_toml(api_key_variable(k))}" for n, k in sorted(trunk.numbers.items()))
            lines.append(f"numbers = {{ {numbers} }}")
        optional: dict[str, object] = {
            "registrar": trunk.registrar, "digest_username": trunk.digest_username,
            "digest_password_env": digest_variable(trunk.name) if trunk.digest_username is not None else None,
            "termination_uri": trunk.termination_uri, "cps": trunk.cps, "ring_seconds": trunk.ring_seconds,
            "callers": list(trunk.callers) or None, "destinations": _list(trunk.destinations),
            "caller_ids": _list(trunk.caller_ids), "usd_per_minute": _price(trunk.usd_per_minute),
            "billing_increment_seconds": trunk.billing_increment_seconds,
            "registrar_retry_seconds": trunk.registrar_retry_seconds,
            "unanswered_invites": trunk.unanswered_invites,
            "inbound_digest_username": trunk.inbound_digest_username,
            "srtp": trunk.srtp if trunk.srtp != "off" else None,
            "inbound_digest_password_env": (inbound_digest_variable(trunk.name)
                                            if trunk.inbound_digest_username is not None else None)}
        lines += [f"{name} = {_toml(value)}" for name, value in optional.items() if value is not None]
    return "\n".join(lines) + "\n"


def _tls_lines(key: SipEdgeKey, folder: str) -> list[str]:
    if key.tls_port is None:
        return []
    lines = [f"tls_port = {key.tls_port}",
             f"tls_certificate_file = {_toml(f'{folder}/{TLS_FILES[TLS_CERTIFICATE_VARIABLE]}')}",
             f"tls_private_key_file = {_toml(f'{folder}/{TLS_FILES[TLS_PRIVATE_KEY_VARIABLE]}')}"]
    if key.tls_ca_certificates:
        lines.append(f"tls_ca_file = {_toml(f'{folder}/{TLS_CA_FILE}')}")
    if key.tls_verify_client:
        lines.append("tls_verify_client = true")
    # The stack's firewall admits only the trunks' sources to the port, the host's nftables caps each
    # source's connections (stacks/shared/sip_edge_host.py tls_firewall).
    return [*lines, "tls_port_firewalled = true"]


def _price(price: float | PriceKey | None) -> object:
    """The edge's `usd_per_minute`: a number, or an inline table of the directions priced."""
    from stacks.config.sip_edge_keys import PriceKey

    if isinstance(price, PriceKey):
        return _Inline({name: value for name, value in (("inbound", price.inbound), ("outbound", price.outbound))
                        if value is not None})
    return price


class _Inline(dict[str, float]):
    """A TOML inline table (`{ inbound = 0.0085 }`), which `_toml` writes as such."""


def _list(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def _toml(value: object) -> str:
    """A TOML value: JSON's strings, numbers and arrays are TOML's too (basic strings, escapes alike);
    an inline table's keys are bare words."""
    if isinstance(value, _Inline):
        return "{ " + ", ".join(f"{name} = {json.dumps(amount)}" for name, amount in value.items()) + " }"
    return json.dumps(value)


def edge_environment(settings: SipEdgeSettings) -> dict[str, str]:
    """Every variable the rendered file names, with a stand-in value of the right shape (on Kubernetes the
    node's address among them)."""
    node = {NODE_ADDRESS_VARIABLE: STAND_IN_PRIVATE} if settings.cloud == "k8s" else {}
    stand_ins = {name: "x" * 48 for name in settings.secret_names()}
    derived = EdgeSecret("x" * 48).edge_credential(f"http://{STAND_IN_PRIVATE}:{CONTROL_PORT}")
    return {**stand_ins, EDGE_CREDENTIAL_VARIABLE: derived, **node}


STAND_IN_PRIVATE, STAND_IN_PUBLIC = "10.0.0.10", "203.0.113.10"


def render_stand_in(settings: SipEdgeSettings, tls_folder: str = TLS_FOLDER) -> str:
    """The file as this cloud's stack renders it, with stand-in addresses where the stack's come later."""
    if settings.cloud == "k8s":
        return render(settings, dispatcher_url="https://dispatcher.example.com", sip_address=None,
                      public_address=settings.key.public_address or STAND_IN_PUBLIC,
                      address_variable=NODE_ADDRESS_VARIABLE, tls_folder=tls_folder)
    return render(settings, dispatcher_url="https://dispatcher.example.com", sip_address=STAND_IN_PRIVATE,
                  public_address=STAND_IN_PUBLIC, tls_folder=tls_folder)


def write_tls_files(settings: SipEdgeSettings, folder: Path, certificate: str, private_key: str) -> None:
    """The TLS files as the host writes them (sipedge_host's boot): the key its owner's alone."""
    (folder / TLS_FILES[TLS_CERTIFICATE_VARIABLE]).write_text(certificate)
    key_file = folder / TLS_FILES[TLS_PRIVATE_KEY_VARIABLE]
    key_file.touch(mode=0o600)
    key_file.write_text(private_key)
    if settings.key.tls_ca_certificates:
        (folder / TLS_CA_FILE).write_text(settings.key.tls_ca_certificates)


def _check_with_the_edge(cfg: Reader, settings: SipEdgeSettings, pair: tuple[str, str] | None = None) -> None:
    """The rendered file, loaded by the edge's own loader (with stand-in addresses and secrets; with tlsPort,
    its TLS files as the host writes them: `pair`'s certificate and key, else a stand-in pair made here)."""
    from sipedge.config import CONFIG_VARIABLE, ConfigError
    from sipedge.config import load as load_edge

    with tempfile.TemporaryDirectory() as folder:
        if settings.key.tls_port is not None:
            write_tls_files(settings, Path(folder), *(pair or stand_in_pair()))
        path = Path(folder) / "edge.toml"
        path.write_text(render_stand_in(settings, tls_folder=folder))
        try:
            load_edge({CONFIG_VARIABLE: str(path), **edge_environment(settings)})
        except ConfigError as exc:
            said = str(exc).replace(f"{CONFIG_VARIABLE}={path}: ", "")
            raise cfg.fail(KEY, f"the edge would refuse it: {said} ({DOCS})") from None


def _check_pair_with_the_edge(cfg: Reader, settings: SipEdgeSettings, tls: Mapping[str, pulumi.Output[str]]) -> None:
    """Once their values are known, the stack's certificate and key loaded by the edge's loader too: a key of another
    certificate, or an encrypted one, fails the preview rather than the edge's boot (an offline run sees neither)."""
    def check(values: list[str]) -> None:
        if not any(is_stand_in(value) for value in values):
            _check_with_the_edge(cfg, settings, (values[0], values[1]))
            _check_served(cfg, values[0])

    pulumi.Output.all(tls[TLS_CERTIFICATE_VARIABLE], tls[TLS_PRIVATE_KEY_VARIABLE]).apply(check)


def _check_served(cfg: Reader, certificate: str) -> None:
    """The certificate as the edge's PJSIP serves it: a key type it cannot, or dates outside now, refused; near its
    end, a warning."""
    import datetime

    from stacks.config.tls_certificate import CertificateRefused, served_certificate_warning

    try:
        warning = served_certificate_warning(certificate, datetime.datetime.now(datetime.UTC))
    except CertificateRefused as exc:
        raise cfg.fail(TLS_CERTIFICATE_KEY, f"{exc} ({DOCS})") from None
    if warning is not None:
        pulumi.log.warn(warning)


def stand_in_pair() -> tuple[str, str]:
    """A certificate and its key (PEM) of the right shape, for the check of a file whose secrets are not read."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sip-edge.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def origination_uri(public_ip: str) -> str:
    """What a trunk sends its calls to: the edge's public address and SIP port."""
    return f"sip:{public_ip}:{SIP_PORT}"


def origination_uri_tls(public_ip: str, tls_port: int) -> str:
    """What a trunk sends its calls to over TLS (Twilio's secure trunking, a carrier's TLS trunk): the edge's public
    address and tlsPort, the transport named as the carriers' guides write an origination URI over TLS, a `sip:` URI
    with `;transport=tls` (docs/sip.md#tls-in-the-cloud)."""
    return f"sip:{public_ip}:{tls_port};transport=tls"


def edge_outputs(public_ip: pulumi.Output[str] | None, edge: SipEdgeSettings | None) -> dict[str, pulumi.Output[str]]:
    """The stack outputs a trunk is set up with (the AWS, GCP and Azure stacks alike): the edge's public address, its
    origination URI over UDP, and with tlsPort its origination URI over TLS; none without an edge."""
    if public_ip is None or edge is None:
        return {}
    found = {"sipEdgeAddress": public_ip, "sipEdgeOriginationUri": public_ip.apply(origination_uri)}
    if (port := edge.key.tls_port) is not None:
        found["sipEdgeOriginationUriTls"] = public_ip.apply(lambda address: origination_uri_tls(address, port))
    return found


def secrets_of(settings: object, control_url: pulumi.Input[str] | None) -> dict[str, pulumi.Output[str]]:
    """What goes into the stack's secret store for the edge (nothing without one): the dispatcher's SIP_EDGE_SECRET,
    and the edge's own secrets and credentials, derived for `control_url` (the URL SIP_EDGE_URL lists it by)."""
    edge: SipEdgeSettings | None = getattr(settings, "sip_edge", None)
    if edge is None:
        return {}
    if control_url is None or edge.deployment_secret is None:
        raise ValueError("a stack with a SIP edge stores its credentials, derived for its control URL")
    return {SECRET_VARIABLE: edge.deployment_secret, **edge.secrets, **edge.credentials(control_url)}
