"""The SIP edge's stack key (`sipEdge`) as pydantic models: its trunks, their prices, the host's size.

Apart from stacks/config/sip_edge.py, which reads the key, because pydantic and these models cost a
check a tenth of a second of CPU (docs/performance.md) and a stack without an edge never needs them: the
reader imports this module only when the key is set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sipedge.drain import MAX_DRAIN_SECONDS
from sipedge.front_unanswered import MAX_UNANSWERED_INVITES

TRUNK_NAME = r"^[a-z0-9][a-z0-9-]{0,31}$"
INSTANCE_TYPE = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
MACHINE_TYPE = r"^[a-z][a-z0-9]*-[a-z0-9-]+$"  # n2-standard-2, c2d-highcpu-4, custom-2-4096
VM_SIZE = r"^Standard_[A-Za-z0-9_]+$"


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PriceKey(_Key):
    """A trunk's price a minute by direction (the edge's `usd_per_minute = {inbound, outbound}`)."""

    inbound: float | None = Field(default=None, ge=0, le=10)
    outbound: float | None = Field(default=None, ge=0, le=10)


class TrunkKey(_Key):
    name: str = Field(pattern=TRUNK_NAME)
    sources: tuple[str, ...] = ()  # CIDRs the trunk's INVITEs come from
    allow_any_source: bool = Field(default=False, alias="allowAnySource")
    media_sources: tuple[str, ...] = Field(default=(), alias="mediaSources")  # CIDRs its calls' RTP comes from
    allow_any_media_source: bool = Field(default=False, alias="allowAnyMediaSource")
    numbers: dict[str, str] = Field(default_factory=dict)  # number -> the dispatcher API key's name
    registrar: str | None = None
    digest_username: str | None = Field(default=None, alias="digestUsername")
    # How soon a failed or refused registration is tried again (the edge's registrar_retry_seconds).
    registrar_retry_seconds: int | None = Field(default=None, alias="registrarRetrySeconds", ge=2, le=1800)
    # The credential the trunk's own INVITEs must carry (docs/sip.md#inbound-digest); its password is a secret of
    # sipEdgeInboundDigestPasswords, by trunk name.
    inbound_digest_username: str | None = Field(default=None, alias="inboundDigestUsername")
    # Its INVITEs that may wait for a worker's first answer at once (the edge's unanswered_invites).
    unanswered_invites: int | None = Field(default=None, alias="unansweredInvites", ge=1, le=MAX_UNANSWERED_INVITES)
    termination_uri: str | None = Field(default=None, alias="terminationUri")
    cps: float | None = None
    ring_seconds: float | None = Field(default=None, alias="ringSeconds")
    callers: tuple[str, ...] = ()
    destinations: tuple[str, ...] | None = None
    allow_any_destination: bool = Field(default=False, alias="allowAnyDestination")
    caller_ids: tuple[str, ...] | None = Field(default=None, alias="callerIds")
    # What its carrier charges a minute (USD), both ways or {inbound, outbound}; the calls' costs show it.
    usd_per_minute: float | PriceKey | None = Field(default=None, alias="usdPerMinute", union_mode="left_to_right")
    billing_increment_seconds: int | None = Field(default=None, alias="billingIncrementSeconds", ge=1, le=60)
    # SRTP on its calls (the edge's `srtp`, docs/sip.md#tls-and-srtp): anything but "off" needs tlsPort.
    srtp: Literal["off", "optional", "mandatory"] = "off"


class SipEdgeKey(_Key):
    enabled: bool = False
    instance_type: str = Field(default="c7i.large", alias="instanceType", pattern=INSTANCE_TYPE)  # AWS
    machine_type: str = Field(default="n2-standard-2", alias="machineType", pattern=MACHINE_TYPE)  # GCP
    # Azure: 2 vCPUs, 8 GiB, x86_64, Trusted Launch
    vm_size: str = Field(default="Standard_D2s_v5", alias="vmSize", pattern=VM_SIZE)
    workers: int = Field(default=1, ge=1, le=64)
    rtp_ports: str = Field(default="40000-40399", alias="rtpPorts")
    answer_seconds: float | None = Field(default=None, alias="answerSeconds")
    # How long a stop lets the calls in flight go on (the edge's drain_seconds, sipedge/drain.py); the host's unit
    # and the pod are given it and a margin. Whole seconds, as a stack file's number is read.
    drain_seconds: int | None = Field(default=None, alias="drainSeconds", ge=0, le=MAX_DRAIN_SECONDS, strict=True)
    trunks: tuple[TrunkKey, ...] = Field(default=(), min_length=1)
    # SIP over TLS on this TCP port (the edge's tls_port); its certificate and key are the secret map
    # sipEdgeTls, the CAs a client's certificate must chain to (PEM, not secret) tlsCaCertificates.
    tls_port: int | None = Field(default=None, alias="tlsPort", ge=1024, le=65535, strict=True)
    tls_verify_client: bool = Field(default=False, alias="tlsVerifyClient")
    tls_ca_certificates: str | None = Field(default=None, alias="tlsCaCertificates")
    # Kubernetes: the nodes the edge's pod may run on (their labels, and the taint that keeps others off),
    # and the address the trunks reach them by (stacks/config/sip_edge_nodes.py).
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    node_taint: str | None = Field(default=None, alias="nodeTaint")
    public_address: str | None = Field(default=None, alias="publicAddress")
