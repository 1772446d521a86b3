"""The bots' channel over TLS inside the cluster (`k8sChannelTls: stack`, the default; `mesh` makes none of it).

The channel's names (`<svc>.<ns>.svc`) are the cluster's own, so no public CA signs them: the stack makes a
private CA and a leaf with `pulumi-tls` (local generation, no API call). The leaf's key is a Secret mounted
into the dispatcher (a file, never an env value); the CA's certificate a ConfigMap every bot pod projects.
Renewal, and what it does to connected bots: docs/kubernetes.md, "The channel's TLS".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes.core as k8s_core
import pulumi_tls as tls

from dispatcher.machines.k8s.pods import CHANNEL_CA_KEY

SECRET_NAME = "voicefleet-channel-tls"  # noqa: S105 (an object's name) in the dispatcher's namespace: the leaf and its key
CA_CONFIGMAP = "voicefleet-channel-ca"  # in the bots' namespace: the CA's certificate
MOUNT_DIR = "/etc/voicefleet/channel-tls"
VOLUME = "channel-tls"
CERT_FILE, KEY_FILE = f"{MOUNT_DIR}/tls.crt", f"{MOUNT_DIR}/tls.key"
LEAF_HOURS, LEAF_EARLY_HOURS = 365 * 24, 30 * 24
CA_HOURS, CA_EARLY_HOURS = 10 * 365 * 24, 365 * 24
NOTE_CERTIFICATE = "voicefleet.io/channel-certificate"  # the pod template's: a new leaf rolls the replicas


def service_names(service: str, namespace: str) -> list[str]:
    """The names the bots dial the dispatcher's Service by: the URL's, and the cluster domain's full one."""
    return [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


@dataclass(frozen=True)
class ChannelTlsArgs:
    service: str  # the dispatcher's Service's name
    dispatcher_namespace: str
    bot_namespace: str
    dispatcher_namespace_ref: pulumi.Input[str]  # the Namespace object's name: its objects wait for it
    bot_namespace_ref: pulumi.Input[str]
    labels: dict[str, str]
    stack: str


class ChannelTls(pulumi.ComponentResource):
    """The CA, the leaf, its Secret and the CA's ConfigMap; `environment()`, `volume()`, `mount()` and
    `annotations` are what the dispatcher's Deployment takes of them."""

    def __init__(self, name: str, args: ChannelTlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:ChannelTls", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca", private_key_pem=ca_key.private_key_pem, is_ca_certificate=True,
            validity_period_hours=CA_HOURS, early_renewal_hours=CA_EARLY_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            subject={"common_name": f"voicefleet {args.stack} bot channel CA"}, opts=child)
        names = service_names(args.service, args.dispatcher_namespace)
        key = tls.PrivateKey(f"{name}-leaf", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(f"{name}-leaf", private_key_pem=key.private_key_pem, dns_names=names,
                                  subject={"common_name": names[0]}, opts=child)
        leaf = tls.LocallySignedCert(
            f"{name}-leaf", cert_request_pem=request.cert_request_pem, ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem, validity_period_hours=LEAF_HOURS, early_renewal_hours=LEAF_EARLY_HOURS,
            allowed_uses=["server_auth", "digital_signature", "key_encipherment"], opts=child)
        self.secret = k8s_core.v1.Secret(
            f"{name}-leaf", metadata={"name": SECRET_NAME, "namespace": args.dispatcher_namespace_ref,
                                      "labels": args.labels},
            type="kubernetes.io/tls", string_data={"tls.crt": leaf.cert_pem, "tls.key": key.private_key_pem},
            opts=child)
        self.ca_configmap = k8s_core.v1.ConfigMap(
            f"{name}-ca", metadata={"name": CA_CONFIGMAP, "namespace": args.bot_namespace_ref,
                                    "labels": args.labels},
            data={CHANNEL_CA_KEY: ca.cert_pem}, opts=child)
        self.ca_pem = ca.cert_pem
        # When each ends (RFC 3339): the stack's outputs, so an operator can see a renewal happened.
        self.expiries: dict[str, pulumi.Output[str]] = {"channelCertificateExpires": leaf.validity_end_time,
                                                        "channelCaExpires": ca.validity_end_time}
        self.names = names
        # A new leaf is a new pod template: the replicas roll onto it (a mounted Secret's files change in
        # place, but the server read them at start).
        self.annotations: dict[str, pulumi.Output[str]] = {NOTE_CERTIFICATE: leaf.cert_pem.apply(
            lambda pem: hashlib.sha256(pem.encode()).hexdigest()[:16])}
        self.objects: tuple[pulumi.Resource, ...] = (self.secret, self.ca_configmap)
        self.register_outputs({"names": names})

    @staticmethod
    def environment() -> dict[str, str]:
        """The dispatcher's settings: the files it serves the channel's port with, the ConfigMap bots mount."""
        return {"BOT_CHANNEL_TLS_CERT_FILE": CERT_FILE, "BOT_CHANNEL_TLS_KEY_FILE": KEY_FILE,
                "K8S_BOT_CHANNEL_CA_CONFIGMAP": CA_CONFIGMAP}

    @staticmethod
    def volume() -> dict[str, Any]:
        return {"name": VOLUME, "secret": {"secret_name": SECRET_NAME, "default_mode": 0o444}}

    @staticmethod
    def mount() -> dict[str, Any]:
        return {"name": VOLUME, "mount_path": MOUNT_DIR, "read_only": True}
