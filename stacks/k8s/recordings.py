"""Recording on Kubernetes: the dispatcher writes to an S3-compatible store the operator runs.

The stack makes no bucket: `recordingDestination` (s3://bucket/prefix) names one in a store such as
MinIO or Ceph RGW at `recordingEndpoint`, and its access key (secret config) becomes a Secret of
its own in the dispatcher's namespace, read by reference (`secretKeyRef`) as the variables boto3
reads: AWS_ENDPOINT_URL_S3 (the service-specific endpoint of the AWS SDKs' shared settings),
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Bot pods are built from their own template and never
get them; retention there is the store's own lifecycle configuration, one rule per day count (the
same prefixes, docs/recording.md).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pulumi

from dispatcher.artifacts.rules import retention_folder
from stacks.config.model import Settings
from stacks.config.reader import SettingsError
from stacks.k8s.network_policies import PRIVATE_RANGES
from stacks.k8s.secrets import DispatcherSecret

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_S3"
# Names only the cluster's resolver answers, with a Service's (private) address.
CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local", ".local")
KEY_ID_VARIABLE = "AWS_ACCESS_KEY_ID"
SECRET_KEY_VARIABLE = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a variable's name, not a secret


def recording_environment(settings: Settings) -> dict[str, pulumi.Input[str]]:
    """RECORDING_* for the dispatcher's pods (plain: no credential in them); nothing with recording off."""
    recording = settings.recording
    if recording is None or recording.store is None:
        return {}
    return recording.environment(recording.store.destination)


def recording_secret(name: str, settings: Settings, namespace: pulumi.Input[str], labels: dict[str, str],
                     opts: pulumi.ResourceOptions) -> DispatcherSecret | None:
    """The store's endpoint and key, a Secret the dispatcher's container reads by reference alone."""
    recording = settings.recording
    if recording is None or recording.store is None:
        return None
    store = recording.store
    return DispatcherSecret(f"{name}-recordings", namespace, {
        ENDPOINT_VARIABLE: store.endpoint, KEY_ID_VARIABLE: store.access_key_id,
        SECRET_KEY_VARIABLE: store.secret_access_key}, labels, opts=opts)


def retention_rules(settings: Settings) -> list[dict[str, object]]:
    """The expirations the operator's store needs, one per day count: a stack output to apply there."""
    recording = settings.recording
    if recording is None or recording.store is None:
        return []
    _, _, prefix = recording.store.destination.removeprefix("s3://").partition("/")
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return [{"prefix": f"{base}{retention_folder(days)}/", "days": days} for days in recording.day_counts() if days]


def closed_to_bots(endpoint: str, egress_except: tuple[str, ...] | list[str]) -> bool:
    """Whether the bots' egress (stacks/k8s/network_policies.py: the public IPv4 internet alone) leaves
    the store out: a private, shared or link-local address, one of `k8sBotEgressExcept`, IPv6, or a
    name only the cluster answers (a Service's: no dot, or `.svc`/`.cluster.local`). A public DNS name
    cannot be checked before the bots resolve it."""
    host = (urlsplit(endpoint).hostname or "").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith(CLUSTER_SUFFIXES)
    closed = [ipaddress.ip_network(cidr) for cidr in (*PRIVATE_RANGES, *egress_except)]
    return address.version == 6 or any(address in network for network in closed)


def refuse_unreachable_store(settings: Settings) -> None:
    """Each bot PUTs its parts to the store itself, through URLs the dispatcher signs for
    `recordingEndpoint`: a store the bots' egress leaves out would lose every recording. Refused at preview."""
    recording, cfg = settings.recording, settings.kubernetes
    if recording is None or recording.store is None or cfg is None:
        return
    if closed_to_bots(recording.store.endpoint, list(cfg.bot_egress_except)):
        raise SettingsError(
            f"Invalid stack configuration: voicefleet:recordingEndpoint {recording.store.endpoint} is where each bot "
            "uploads its recording's parts, and the bots cannot reach it: their egress is the public IPv4 internet "
            "only, without private, shared or link-local ranges, IPv6, cluster-internal names or "
            "k8sBotEgressExcept. Give the store a public address or DNS name (an Ingress in front of it) and name "
            "that (docs/recording.md, \"In the cloud stacks\")")
