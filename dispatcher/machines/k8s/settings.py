"""`MACHINES=k8s` settings (K8S_*), each checked at start with one line naming the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from dispatcher.channel.identity import identity_audience
from dispatcher.machines.call_timings import call_timings
from dispatcher.machines.k8s.cell_settings import K8sCell, k8s_cells
from dispatcher.settings import SettingsError, credentialed_url, listed_transports, require
from voicefleet_settings.read import setting_choice, setting_int, setting_text

# Where a Pod finds its own ServiceAccount's token and the cluster's CA (kubernetes.io, "Accessing
# the Kubernetes API from a Pod"); the kubelet rotates the token file, so it is read again per call.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_AUDIENCE = "voicefleet"
# The API server's own audiences as clusters set them (`--api-audiences`, by default its
# `--service-account-issuer`: kubernetes.io "Configure Service Accounts for Pods"). A bot's token of
# one of these would hand the dispatcher, at every hello, a credential the API server accepts.
API_SERVER_AUDIENCES = ("https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local",
                        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# resource.Quantity's form (k8s.io/apimachinery/pkg/api/resource): a number and an optional suffix.
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
PODS, AGENT_SANDBOX = "pods", "agent-sandbox"  # K8S_MODE: bare pods, or kubernetes-sigs/agent-sandbox claims
MODES = (PODS, AGENT_SANDBOX)
DEFAULT_WARM_POOL = "voicefleet-bot"
MODEL_SERVICE_VARIABLE = "MODEL_SERVICE_URL"  # the dispatcher's and, as it starts them, its bots'
# The account's Twilio region, the dispatcher's and, as it starts them, its bots': Pipecat's TwilioFrameSerializer
# hangs a call up at that region's host, which the region's credentials need (dispatcher/phone/twilio_host.py).
TWILIO_REGION_VARIABLES = ("TWILIO_REGION", "TWILIO_EDGE")
# The dispatcher's log format and trace collector, passed on to every bot as the stacks' other clouds set theirs
# (stacks/config/observability.py): JSON lines, and spans to the same collector in the same protocol (the traces'
# own variables too: each wins over the general one, in the bot as in the dispatcher). The collector's headers are
# a key, never a plain value: a bot takes them from K8S_BOT_SECRET.
LOG_FORMAT_VARIABLE, JSON_LOGS = "LOG_FORMAT", "json"
TRACE_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACE_VARIABLES = (*TRACE_ENDPOINTS, "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")

_SUFFIXES = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}


def quantity(value: str) -> float:
    """A Kubernetes quantity as a number: `500m` → 0.5 (CPUs), `1Gi` → 1073741824 (bytes)."""
    number = value.rstrip("mkMGTPEi")
    return float(number) * _SUFFIXES[value[len(number):]]


@dataclass(frozen=True)
class K8sSettings:
    namespace: str
    image: str
    api_url: str
    token_file: str
    ca_file: str | None
    cpu: str = "1"
    memory: str = "1Gi"
    runtime_class: str | None = None
    service_account: str | None = None
    token_audience: str = DEFAULT_AUDIENCE  # the bot's projected ServiceAccount token's audience
    stop_grace_seconds: int = 30  # a stopped session's bot gets this long to say goodbye (SIGTERM first)
    timeout: float = 10.0
    retry_deadline: float = 10.0
    poll_seconds: float = 1.0
    mode: str = PODS
    warm_pool: str = DEFAULT_WARM_POOL  # agent-sandbox: the SandboxWarmPool every claim checks out from
    # The default web transport (TRANSPORTS); in agent-sandbox mode the only one: the pool's template's BOT_TRANSPORT.
    pool_transport: str = "daily"
    # K8S_BOT_CHANNEL_CA_CONFIGMAP: a ConfigMap in K8S_NAMESPACE whose `ca.crt` every bot pod mounts and
    # trusts for a wss:// channel (BOT_CHANNEL_CA_FILE; docs/kubernetes.md, "The channel's TLS").
    channel_ca_configmap: str | None = None
    # K8S_BOT_SECRET: a Secret in K8S_NAMESPACE whose keys every bot pod takes as its environment (`envFrom`):
    # the kubelet reads it, the dispatcher only names it and never reads a Secret (docs/kubernetes.md, "Its keys").
    bot_secret: str | None = None
    # MODEL_SERVICE_URL: the shared model service this dispatcher admits starts against (dispatcher/models/),
    # which every bot it starts is told as the same variable (docs/converged.md, "On Kubernetes").
    model_service_url: str | None = None
    # TWILIO_REGION and TWILIO_EDGE, those set: every bot pod gets them, as the stack's other clouds give theirs.
    twilio_region: Mapping[str, str] = field(default_factory=dict)
    # LOG_FORMAT=json when the dispatcher logs JSON, and its OTLP endpoint and protocol, those set: every bot pod's.
    observability: Mapping[str, str] = field(default_factory=dict)
    # K8S_CELLS: the clusters the bots' pods spread over (k8s/cells.py); empty: K8S_API_URL's alone.
    cells: tuple[K8sCell, ...] = ()

    def for_cell(self, cell: K8sCell) -> K8sSettings:
        """One cell's settings: its cluster, credentials and namespace; the rest the deployment's."""
        return replace(self, api_url=cell.api_url, token_file=cell.token_file, ca_file=cell.ca_file,
                       namespace=cell.namespace, cells=())

    @property
    def told_bots(self) -> dict[str, str]:
        """What every bot pod is told of the dispatcher's own settings: the model service, the Twilio region,
        the log format and the trace collector (a session's pod, an idle one, an agent-sandbox template's)."""
        models = {MODEL_SERVICE_VARIABLE: self.model_service_url} if self.model_service_url else {}
        return {**models, **self.twilio_region, **self.observability}

    @property
    def bot_account(self) -> str:
        """The bots' ServiceAccount: a pod with no `serviceAccountName` runs as the namespace's `default`."""
        return self.service_account or "default"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> K8sSettings:
        required = require(env, ("K8S_NAMESPACE", "BOT_IMAGE"), "k8s")
        namespace = required["K8S_NAMESPACE"]
        if not _DNS_LABEL.match(namespace):
            raise SettingsError(f"K8S_NAMESPACE={namespace[:70]!r} is not a namespace name (a DNS-1123 label)")
        cells = k8s_cells(setting_text(env, "K8S_CELLS"), namespace)
        if cells and setting_choice(env, "K8S_MODE") == AGENT_SANDBOX:
            raise SettingsError("K8S_CELLS with K8S_MODE=agent-sandbox: a SandboxWarmPool is one cluster's, so its "
                                "claims cannot spread over cells; use K8S_MODE=pods over cells, or one cluster per "
                                "region with agent-sandbox (docs/kubernetes.md, \"Several clusters\")")
        # Over cells each cell names its own API server: K8S_API_URL (or the Pod's own cluster) is not needed.
        api_url = setting_text(env, "K8S_API_URL").rstrip("/") or (cells[0].api_url if cells else _in_cluster_url(env))
        credentialed_url("K8S_API_URL", api_url, "the dispatcher's token from K8S_TOKEN_FILE")
        cpu, memory = setting_text(env, "K8S_BOT_CPU"), setting_text(env, "K8S_BOT_MEMORY")
        for name, value in (("K8S_BOT_CPU", cpu), ("K8S_BOT_MEMORY", memory)):
            if not _QUANTITY.match(value):
                raise SettingsError(f"{name}={value[:40]!r} is not a Kubernetes quantity (e.g. 500m, 1, 1Gi)")
        runtime_class = setting_text(env, "K8S_RUNTIME_CLASS") or None
        account = setting_text(env, "K8S_SERVICE_ACCOUNT") or None
        for name, named in (("K8S_RUNTIME_CLASS", runtime_class), ("K8S_SERVICE_ACCOUNT", account)):
            if named is not None and not _DNS_LABEL.match(named):
                raise SettingsError(f"{name}={named[:70]!r} is not a Kubernetes object name (a DNS-1123 label)")
        mode = setting_choice(env, "K8S_MODE")  # pods: any cluster; agent-sandbox: one with its extensions
        pool = setting_text(env, "K8S_WARM_POOL")
        if not _DNS_LABEL.match(pool):
            raise SettingsError(f"K8S_WARM_POOL={pool[:70]!r} is not a SandboxWarmPool name (a DNS-1123 label)")
        ca_configmap = setting_text(env, "K8S_BOT_CHANNEL_CA_CONFIGMAP") or None
        if ca_configmap is not None and not _DNS_SUBDOMAIN.match(ca_configmap):
            raise SettingsError(f"K8S_BOT_CHANNEL_CA_CONFIGMAP={ca_configmap[:70]!r} is not a ConfigMap name "
                                "(a DNS-1123 subdomain)")
        bot_secret = setting_text(env, "K8S_BOT_SECRET") or None
        if bot_secret is not None and not _DNS_SUBDOMAIN.match(bot_secret):
            raise SettingsError(f"K8S_BOT_SECRET={bot_secret[:70]!r} is not a Secret name (a DNS-1123 subdomain)")
        # A bot refuses a CA file beside a plain URL (bot/config.py): every bot would end at its start.
        if ca_configmap is not None and setting_text(env, "BOT_CHANNEL_URL").startswith("ws://"):
            raise SettingsError("K8S_BOT_CHANNEL_CA_CONFIGMAP is set but BOT_CHANNEL_URL is ws://: the CA checks a "
                                "wss:// channel only; unset it, or serve the channel with BOT_CHANNEL_TLS_*")
        transports = listed_transports(env, "k8s")
        if mode == AGENT_SANDBOX and len(transports) > 1:
            raise SettingsError(f"TRANSPORTS={','.join(transports)} with K8S_MODE=agent-sandbox: every bot is a pod "
                                "of the pool's one SandboxTemplate, which boots one web transport (its BOT_TRANSPORT), "
                                "so a session of another would adopt a bot that cannot serve it; set TRANSPORTS=webrtc "
                                "with a TURN relay (TURN_URLS), else TRANSPORTS=daily (docs/kubernetes.md)")
        audience = identity_audience(env) or DEFAULT_AUDIENCE
        if audience.rstrip("/") in API_SERVER_AUDIENCES:
            raise SettingsError(f"BOT_IDENTITY_AUDIENCE={audience[:80]!r} is the API server's own audience: each "
                                "bot's identity token would be an API credential handed to the dispatcher; use the "
                                "channel's URL (the default) or any name of voicefleet's own")
        return cls(
            namespace=namespace,
            mode=mode,
            warm_pool=pool,
            pool_transport=transports[0],
            image=required["BOT_IMAGE"],
            api_url=api_url,
            token_file=setting_text(env, "K8S_TOKEN_FILE"),
            ca_file=env.get("K8S_CA_FILE", "").strip() or (f"{SERVICE_ACCOUNT_DIR}/ca.crt"
                                                          if api_url.startswith("https://") else None),
            cpu=cpu,
            memory=memory,
            runtime_class=runtime_class,
            service_account=account,
            token_audience=audience,
            channel_ca_configmap=ca_configmap,
            bot_secret=bot_secret,
            model_service_url=setting_text(env, MODEL_SERVICE_VARIABLE).rstrip("/") or None,
            twilio_region={name: value for name in TWILIO_REGION_VARIABLES if (value := setting_choice(env, name))},
            observability=_observability(env),
            cells=cells,
            stop_grace_seconds=setting_int(env, "K8S_STOP_GRACE_SECONDS"),
            **call_timings(env, "K8S"),
        )


def _observability(env: Mapping[str, str]) -> dict[str, str]:
    """LOG_FORMAT=json if the dispatcher logs JSON (a bot's default is text: nothing to say otherwise), and the
    trace variables the environment sets (an unset protocol is the bot's default too). An endpoint with a user or
    password in it is refused: every bot pod's spec, readable by whoever may `get` pods, would show it."""
    logs = {LOG_FORMAT_VARIABLE: JSON_LOGS} if setting_choice(env, LOG_FORMAT_VARIABLE) == JSON_LOGS else {}
    traces = {name: value for name in TRACE_VARIABLES if (value := env.get(name, "").strip())}
    for name in TRACE_ENDPOINTS:
        netloc = urlsplit(traces.get(name, "")).netloc
        if "@" in netloc:
            raise SettingsError(f"{name} holds a user or password before its host (…@{netloc.rpartition('@')[2]}), "
                                "which MACHINES=k8s would write in plain into every bot pod's spec: remove it and "
                                "send the credential as a header, in OTEL_EXPORTER_OTLP_HEADERS (e.g. "
                                "`Authorization=Basic%20<base64 of user:password>`), which bots take from the "
                                "K8S_BOT_SECRET Secret (docs/kubernetes.md, \"The bots' logs and traces\")")
    return {**logs, **traces}


def _in_cluster_url(env: Mapping[str, str]) -> str:
    """The API server as a Pod reaches it: the variables the kubelet sets in every container."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", "").strip(), env.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host:
        raise SettingsError("MACHINES=k8s needs K8S_API_URL outside a cluster (in a Pod the kubelet sets "
                            "KUBERNETES_SERVICE_HOST)")
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port or '443'}"

