"""The Kubernetes stack's own keys (`cloud: k8s`): the cluster, its namespaces, the images, the sizes.

The stack deploys into a cluster its owner already runs (docs/kubernetes.md, "A stack for your
cluster"): the kubeconfig is a secret (`k8sKubeconfig`), the images are built by the stack and pushed to
`k8sRegistry`, or built elsewhere and named by digest (stacks/config/k8s_registry.py), and the replicas'
store is an external Valkey/Redis whose URL (credentials inside) is a secret too, or (`k8sStore:
in-cluster`) a Valkey the stack runs itself, whose user's password is the stack's own (or `storePassword`)
as on the other clouds. The dispatcher always runs two replicas at least (a PodDisruptionBudget keeps one
through a node drain), so a store and its message secret (made unless `storeMessageSecret` sets one) always.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import TYPE_CHECKING

import pulumi

from dispatcher.machines.k8s.settings import AGENT_SANDBOX, MODES
from stacks.config import k8s_cells, k8s_model, k8s_registry
from stacks.config import store as store_settings
from stacks.config.bot import offered_sessions, web_transports
from stacks.config.ceiling import K8S_ALLOCATABLE_KEY
from stacks.config.ceiling import K8S_OVERHEAD_KEY as OVERHEAD_CPU_KEY
from stacks.config.channel import TOKEN_KEY as CHANNEL_TOKEN_KEY
from stacks.config.k8s_ingress import ingress_sources
from stacks.config.reader import Reader

if TYPE_CHECKING:
    from stacks.config.model import KubernetesSettings, Settings

KUBECONFIG_KEY = "k8sKubeconfig"
# agent-sandbox itself (stacks/k8s/agent_sandbox.py): the cluster's own, adopted, or the stack's pinned release,
# whose controller runs as its own account.
AGENT_SANDBOX_KEY, ADOPT, INSTALL = "k8sAgentSandbox", "adopt", "install"
AGENT_SANDBOX_CHOICES = (ADOPT, INSTALL)
INSTALLED_CONTROLLER = ("agent-sandbox-system", "agent-sandbox-controller")
STORE_URL_KEY = "k8sStoreUrl"
BOT_SECRET_KEY = "k8sBotSecret"  # noqa: S105 - a key: the team's own Secret of the bots' keys, for botSecrets
STORE_KEY = "k8sStore"
OVERHEAD_MEMORY_KEY = "k8sPodOverheadMemory"
CHANNEL_TLS_KEY = "k8sChannelTls"
STACK_TLS, MESH_TLS = "stack", "mesh"
# The meshes that encrypt pod traffic without changing the bots' pods (stacks/k8s/mesh.py).
ISTIO_AMBIENT, CILIUM = "istio-ambient", "cilium"
CHANNEL_TLS_CHOICES = (STACK_TLS, ISTIO_AMBIENT, CILIUM)
EXTERNAL, IN_CLUSTER = "external", "in-cluster"
# Kubernetes' DNS-1123 label (namespace and object names, k8s.io/apimachinery validation IsDNS1123Label).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A Secret's name: a DNS-1123 subdomain (apimachinery IsDNS1123Subdomain).
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The forms the stack takes (a subset of resource.Quantity it can multiply for the quota):
# CPU as whole or decimal cores or millicores, memory in Mi or Gi. CPU stays under a million cores (no
# cluster comes near), so no figure overflows the ceiling's float arithmetic.
_CPU = re.compile(r"^(?:(\d{1,9})m|(\d{1,6}(?:\.\d{1,3})?))$")
_MEMORY = re.compile(r"^(\d{1,19})(Mi|Gi)$")  # 19 digits at most: none too long for int()
_LARGEST_MEBIBYTES = (2 ** 63 - 1) // 2 ** 20  # a quantity's largest int64 of bytes, in whole Mi
# Any stable name the operator gives the cluster (an EKS ARN, a GKE `gke_…` or `projects/…` name, an AKS
# resource id, an eksctl `user@cluster.region.eksctl.io`): printable, no spaces, so a diff shows it plainly.
_CLUSTER_IDENTIFIER = re.compile(r"^[A-Za-z0-9/][A-Za-z0-9._:/@()-]{0,511}$")
# The deployer's user name goes into the admission policy's CEL as a quoted string: printable ASCII, no
# space, quote or backslash (an EKS ARN, a GKE e-mail, `system:serviceaccount:ns:name`, a kubeadm `kubernetes-admin`).
_USER_NAME = re.compile(r"^[!#-&(-\[\]-~]{1,512}$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def load(cfg: Reader, settings: Settings) -> KubernetesSettings:
    from stacks.config.model import KubernetesSettings

    if settings.regions is not None:
        raise cfg.fail("regions", "is not supported on k8s yet: the front door and the regions' URLs are built for "
                                  "AWS and GCP (docs/regions.md)")
    if settings.turn is not None and settings.turn.mode == "managed":
        raise cfg.fail("turn", "managed is not supported on k8s: a relay needs a public UDP port range, which a "
                               "Service rarely gets. Name a TURN service you run elsewhere (coturn on a VM, "
                               "Cloudflare, Twilio): pulumi config set turn external and turnUrls turn:<host>:3478; "
                               "or take the relay VM of a cloud stack's `turn: managed` (its turnUrls) "
                               "(docs/kubernetes.md, \"A TURN relay\")")
    bot_secret = bot_secret_name(cfg, settings)
    if settings.secrets.bot_channel_token is None:
        raise cfg.fail("botChannel", "must be true on k8s: a bot's pod holds no session value and no credential "
                                     "and takes its session over the dispatcher's channel; pulumi config set "
                                     f"botChannel true (the stack makes its token; or set your own: pulumi config "
                                     f"set --secret {CHANNEL_TOKEN_KEY} <32+ random characters>) "
                                     "(docs/kubernetes.md, \"Identity\")")
    kubeconfig = cfg.secret(KUBECONFIG_KEY, required=True)
    assert kubeconfig is not None  # `required=True` raised already
    store = cfg.string(STORE_KEY, choices=(EXTERNAL, IN_CLUSTER))
    if store == IN_CLUSTER:
        _check_in_cluster_store(cfg, settings)
    store_url = _store_url(cfg, settings) if store == EXTERNAL else None
    replicas = cfg.integer("k8sDispatcherReplicas", minimum=2, maximum=100)
    names = {key: cfg.string(key, pattern=DNS_LABEL) for key in
             ("k8sDispatcherNamespace", "k8sBotNamespace", "k8sIngressNamespace")}
    if names["k8sDispatcherNamespace"] == names["k8sBotNamespace"]:
        raise cfg.fail("k8sBotNamespace", "must differ from k8sDispatcherNamespace: the bots' namespace enforces Pod "
                                          "Security `restricted` and its quota counts bots only")
    runtime_class = cfg.optional("k8sRuntimeClass")
    if runtime_class is not None and not DNS_LABEL.match(runtime_class):
        raise cfg.fail("k8sRuntimeClass", f"must be a RuntimeClass name (a DNS-1123 label; got {runtime_class!r})")
    tls_secret = cfg.optional("k8sTlsSecret")
    if tls_secret is not None and not DNS_LABEL.match(tls_secret):
        raise cfg.fail("k8sTlsSecret", f"must be a Secret's name in k8sDispatcherNamespace (got {tls_secret!r})")
    cluster_identifier = cfg.optional("k8sClusterIdentifier")
    if cluster_identifier is not None and not _CLUSTER_IDENTIFIER.match(cluster_identifier):
        raise cfg.fail("k8sClusterIdentifier", f"must be the kubeconfig's name for the cluster, like its EKS ARN or "
                                               f"gke_project_zone_name (letters, digits, . _ : / @ ( ) -, 512 at most; "
                                               f"got {cluster_identifier!r})")
    host = cfg.string("k8sDispatcherHost", required=True)
    if not _HOST.match(host):
        raise cfg.fail("k8sDispatcherHost", f"must be a lowercase DNS name, the Ingress's host (got {host!r})")
    bot_cpu, bot_memory = cfg.string("k8sBotCpu"), cfg.string("k8sBotMemory")
    dispatcher_cpu = cfg.string("k8sDispatcherCpu")
    _millicores(cfg, "k8sDispatcherCpu", dispatcher_cpu)
    mode = cfg.string("k8sMode", choices=MODES)
    controller = _service_account(cfg, "k8sSandboxController")
    agent_sandbox = _agent_sandbox(cfg, mode, controller)
    deployer = _deployer(cfg, settings) if mode == AGENT_SANDBOX else None
    _pinned_endpoint(cfg, settings, mode)
    ingress_class = cfg.string("k8sIngressClass", pattern=DNS_LABEL)
    registry, dispatcher_image, bot_image = k8s_registry.load(cfg)
    cells = k8s_cells.cells(cfg, mode=mode, namespace=names["k8sBotNamespace"],
                            dispatcher_namespace=names["k8sDispatcherNamespace"])
    if cells and settings.secrets.bot:
        raise cfg.fail("botSecrets", f"is written into a Secret in this cluster only, and with {k8s_cells.CELLS_KEY} "
                                     "the bots' pods run in the cells' clusters, each reading its keys from its own "
                                     "namespace: keep them in a Secret of yours in each cell's namespace, name it in "
                                     f"{BOT_SECRET_KEY}, and `pulumi config rm --path botSecrets` "
                                     "(docs/kubernetes.md, \"Several clusters\")")
    if cells and settings.observability.otlp_headers and bot_secret is None:
        raise cfg.fail("otelExporterOtlpHeaders", f"reaches the bots as a key of their Secret, which the stack writes "
                                                  f"in this cluster only, and with {k8s_cells.CELLS_KEY} the bots' "
                                                  "pods run in the cells' clusters, each reading its keys from its "
                                                  "own namespace: put OTEL_EXPORTER_OTLP_HEADERS (the same headers) "
                                                  "in a Secret of yours in each cell's namespace and name it in "
                                                  f"{BOT_SECRET_KEY} (docs/kubernetes.md, \"The bots' logs and "
                                                  "traces\")")
    if cells and cfg.raw(K8S_ALLOCATABLE_KEY) is not None:
        raise cfg.fail(K8S_ALLOCATABLE_KEY, f"is the CPU this cluster's nodes give the bots, but with "
                                            f"{k8s_cells.CELLS_KEY} the bots run in the cells' clusters: state each "
                                            "cluster's share as its cell's max_pods instead, and `pulumi config rm "
                                            f"{K8S_ALLOCATABLE_KEY}`")
    found = KubernetesSettings(
        kubeconfig=kubeconfig,
        context=cfg.optional("k8sContext"),
        cluster_identifier=cluster_identifier,
        dispatcher_namespace=names["k8sDispatcherNamespace"],
        bot_namespace=names["k8sBotNamespace"],
        ingress_namespace=names["k8sIngressNamespace"],
        dispatcher_image=dispatcher_image,
        bot_image=bot_image,
        registry=registry,
        dispatcher_replicas=replicas,
        dispatcher_cpu=dispatcher_cpu,
        bot_cpu=bot_cpu,
        bot_memory=bot_memory,
        bot_millicores=_millicores(cfg, "k8sBotCpu", bot_cpu),
        allocatable_millicores=_allocatable(cfg),
        bot_mebibytes=_mebibytes(cfg, "k8sBotMemory", bot_memory),
        runtime_class=runtime_class,
        overhead=pod_overhead(cfg, runtime_class),
        bot_egress_except=_public_ranges(cfg, "k8sBotEgressExcept"),
        dns_addresses=_dns_addresses(cfg),
        ingress_class=ingress_class,
        ingress_sources=ingress_sources(cfg, ingress_class),
        dispatcher_host=host,
        tls_secret=tls_secret,
        store_url=store_url,
        mode=mode,
        sandbox_controller=controller,
        deployer=deployer,
        agent_sandbox=agent_sandbox,
        store=store,
        store_mebibytes=_mebibytes(cfg, "k8sStoreStorage", cfg.string("k8sStoreStorage"), "a volume's size"),
        channel_tls=channel_tls(cfg),
        bot_secret=bot_secret,
        model=k8s_model.load(cfg, DNS_LABEL, (names["k8sDispatcherNamespace"], names["k8sBotNamespace"])),
        cells=cells,
    )
    if settings.turn is not None:
        offered = web_transports(replace(settings, kubernetes=found))
        pulumi.log.info(f"voicefleet:turn external: this stack's dispatcher offers {offered_sessions(offered)} "
                        f"(TRANSPORTS={','.join(offered)})" + (
                            "; with k8sMode agent-sandbox every bot is a pod of the pool's one template, which boots "
                            "SmallWebRTC, so a Daily start is refused (docs/kubernetes.md, \"A TURN relay\")"
                            if "daily" not in offered else ""))
    return found


def bot_secret_name(cfg: Reader, settings: Settings) -> str | None:
    """`k8sBotSecret`: a Secret the team keeps in the bots' namespace, whose keys every bot pod takes as its
    environment, in place of the one the stack writes from `botSecrets` (the two are exclusive)."""
    name = cfg.optional(BOT_SECRET_KEY)
    if name is None:
        return None
    if not _DNS_SUBDOMAIN.match(name):
        raise cfg.fail(BOT_SECRET_KEY, f"must be a Secret's name in k8sBotNamespace (lowercase letters, digits, '-' "
                                       f"and '.', 253 at most; got {name!r})")
    if settings.secrets.bot:
        raise cfg.fail(BOT_SECRET_KEY, f"is set beside botSecrets: the bots take their keys from one Secret, "
                                       f"either the one the stack writes from botSecrets or the one you keep. "
                                       f"Keep one: `pulumi config rm {BOT_SECRET_KEY}` (the stack writes "
                                       "botSecrets into its own Secret), or move the keys into your Secret and "
                                       "`pulumi config rm --path botSecrets` (and deepgramApiKey, cartesiaApiKey, "
                                       "openaiApiKey) (docs/kubernetes.md, \"Its keys\")")
    return name


def _store_url(cfg: Reader, settings: Settings) -> pulumi.Output[str]:
    """The external store: its URL carries the credentials, so the stack's own password has no use."""
    if settings.secrets.store_password is not None or settings.secrets.store_previous_password is not None:
        raise cfg.fail(store_settings.PASSWORD_KEY, f"is not used with {STORE_KEY} {EXTERNAL}: the store's "
                                                    f"credentials are in {STORE_URL_KEY}; pulumi config rm "
                                                    f"{store_settings.PASSWORD_KEY} (or set {STORE_KEY} "
                                                    f"{IN_CLUSTER} to have the stack run the store)")
    store_url = cfg.secret(STORE_URL_KEY, required=False)
    if store_url is None:
        raise cfg.fail(STORE_URL_KEY, "is required on k8s: the dispatcher's replicas share a Valkey/Redis store "
                                      f"(docs/replicas.md); pulumi config set --secret {STORE_URL_KEY} "
                                      f"rediss://user:password@host:6380/0 (or pulumi config set {STORE_KEY} "
                                      f"{IN_CLUSTER} to have the stack run one)")
    return store_url


def _check_in_cluster_store(cfg: Reader, settings: Settings) -> None:
    """The stack's own Valkey: its URL is the stack's Service, its user's password `storePassword`."""
    if cfg.secret(STORE_URL_KEY, required=False) is not None:
        raise cfg.fail(STORE_URL_KEY, f"is not used with {STORE_KEY} {IN_CLUSTER}: the stack runs the store and "
                                      f"names it itself; pulumi config rm {STORE_URL_KEY} (or set {STORE_KEY} "
                                      f"{EXTERNAL} to keep that store)")


def _agent_sandbox(cfg: Reader, mode: str, controller: tuple[str, str]) -> str:
    """`adopt` the cluster's agent-sandbox, or `install` the pinned release (stacks/k8s/agent_sandbox.py),
    whose controller runs as the release's own account."""
    choice = cfg.string(AGENT_SANDBOX_KEY, choices=AGENT_SANDBOX_CHOICES)
    if choice != INSTALL:
        return choice
    if mode != AGENT_SANDBOX:
        raise cfg.fail(AGENT_SANDBOX_KEY, f"is {INSTALL}, but k8sMode is {mode}: only the agent-sandbox mode uses "
                                          f"agent-sandbox; pulumi config rm {AGENT_SANDBOX_KEY} (or set k8sMode "
                                          f"{AGENT_SANDBOX})")
    if controller != INSTALLED_CONTROLLER:
        raise cfg.fail("k8sSandboxController", f"is {'/'.join(controller)}, but with {AGENT_SANDBOX_KEY} {INSTALL} the "
                                               f"controller is the release's own {'/'.join(INSTALLED_CONTROLLER)}: "
                                               "pulumi config rm k8sSandboxController")
    return choice


def _service_account(cfg: Reader, key: str) -> tuple[str, str]:
    value = cfg.string(key)
    namespace, _, name = value.partition("/")
    if not (DNS_LABEL.match(namespace) and DNS_LABEL.match(name)):
        raise cfg.fail(key, f"must be a ServiceAccount as namespace/name, like agent-sandbox-system/"
                            f"agent-sandbox-controller (got {value!r})")
    return namespace, name


def _deployer(cfg: Reader, settings: Settings) -> str:
    """agent-sandbox mode: who the stack is to the API server."""
    deployer = cfg.string("k8sDeployer")
    if not deployer:
        raise cfg.fail("k8sDeployer", "is required with k8sMode agent-sandbox: the user name the API server sees "
                                      "for k8sKubeconfig (`kubectl auth whoami`), the only one the bots' admission "
                                      "policy lets write their SandboxTemplate and SandboxWarmPool")
    if not _USER_NAME.match(deployer):
        raise cfg.fail("k8sDeployer", f"must be a user name of printable characters with no space, quote or "
                                      f"backslash, as `kubectl auth whoami` prints it (got {deployer!r})")
    return deployer


def _pinned_endpoint(cfg: Reader, settings: Settings, mode: str) -> None:
    """pods mode: the collector's URL goes into the bots' admission policy's CEL as a quoted string
    (stacks/k8s/bot_trace_env.py), which holds no quote or backslash; percent-encoded, the URL is the same."""
    endpoint = settings.observability.otlp_endpoint
    if mode == AGENT_SANDBOX or endpoint is None or not ({"'", "\\"} & set(endpoint)):
        return
    raise cfg.fail("otelExporterOtlpEndpoint", f"holds a quote or backslash, which the bots' admission policy (k8sMode "
                                               f"pods) cannot pin the bots' collector to (got {endpoint!r}): write "
                                               "them percent-encoded, %27 and %5C")


def _public_ranges(cfg: Reader, key: str) -> tuple[str, ...]:
    """IPv4 ranges the bots' "public internet" rule leaves out besides the private ones (the API server's
    public endpoint, the nodes' public addresses, the dispatcher's own load balancer)."""
    found = []
    for value in cfg.string_list(key):
        try:
            network = ipaddress.IPv4Network(value)  # strict: a typo's host bits would widen the range silently
        except ValueError:
            raise cfg.fail(key, f"must list IPv4 addresses or CIDR ranges like 34.118.10.7 or 34.118.10.0/24, no "
                                f"bits past the prefix (got {value!r}; the bots' IPv6 egress is closed already)"
                           ) from None
        if network.prefixlen < 8:
            # wider than any one provider's range, and 0.0.0.0/0 is refused by the API server (not a
            # strict subset of the rule's own 0.0.0.0/0)
            raise cfg.fail(key, f"must list ranges of /8 or narrower (got {value!r})")
        found.append(str(network))
    return tuple(dict.fromkeys(found))


def _dns_addresses(cfg: Reader) -> tuple[str, ...]:
    found = []
    for value in cfg.string_list("k8sDnsAddresses"):
        try:
            found.append(str(ipaddress.IPv4Address(value)))
        except ValueError:
            raise cfg.fail("k8sDnsAddresses", f"must list the bots' resolver's IPv4 addresses, like 169.254.20.10 or "
                                              f"the kube-dns Service's 10.96.0.10 (got {value!r})") from None
    return tuple(dict.fromkeys(found))


def millicores(value: str, *, zero: bool = False) -> int | None:
    """CPU in the forms the stack takes (1, 0.5, 500m) as millicores; None for any other or none at all
    (none is a figure where `zero`: a Pod Overhead of none)."""
    found = _CPU.match(value)
    if found is None or (cores := int(found[1]) if found[1] else round(float(found[2]) * 1000)) < (0 if zero else 1):
        return None
    return cores


def pod_overhead(cfg: Reader, runtime_class: str | None) -> tuple[int, int]:
    """`k8sPodOverheadCpu` and `k8sPodOverheadMemory`: the bots' RuntimeClass's `overhead.podFixed` (millicores,
    MiB). Kubernetes adds it to each pod's requests and limits for scheduling and the ResourceQuota (kubernetes.io,
    "Pod Overhead"), so the stack counts it in both; without a runtime class there is none to count."""
    cpu, memory = cfg.string(OVERHEAD_CPU_KEY), cfg.string(OVERHEAD_MEMORY_KEY)
    found = millicores(cpu, zero=True)
    if found is None:
        raise cfg.fail(OVERHEAD_CPU_KEY, f"must be the RuntimeClass's overhead.podFixed.cpu as cores or millicores, "
                                         f"like 250m, or 0 (got {cpu!r})")
    mebibytes = 0 if memory == "0" else _mebibytes(cfg, OVERHEAD_MEMORY_KEY, memory,
                                                    "the RuntimeClass's overhead.podFixed.memory (or 0)")
    if runtime_class is None and (found or mebibytes):
        key = OVERHEAD_CPU_KEY if found else OVERHEAD_MEMORY_KEY
        raise cfg.fail(key, "is set without k8sRuntimeClass: a Pod Overhead is a RuntimeClass's, and the bots run on "
                            f"the nodes' default runtime; pulumi config set k8sRuntimeClass <its name>, or pulumi "
                            f"config rm {key}")
    return found, mebibytes


def _allocatable(cfg: Reader) -> int | None:
    """`k8sAllocatableCpu`: the CPU the nodes can give the bots (stacks/config/ceiling.py), or None."""
    stated = cfg.optional(K8S_ALLOCATABLE_KEY)
    return None if stated is None else _millicores(cfg, K8S_ALLOCATABLE_KEY, stated)


def _millicores(cfg: Reader, key: str, value: str) -> int:
    cores = millicores(value)
    if cores is None:
        shown = value if len(value) <= 40 else f"{value[:20]}… ({len(value)} characters)"
        raise cfg.fail(key, f"must be CPU as cores or millicores, like 1, 0.5 or 500m, under a million "
                            f"cores (got {shown!r})")
    return cores


def _mebibytes(cfg: Reader, key: str, value: str, what: str = "memory") -> int:
    found = _MEMORY.match(value)
    mebibytes = int(found[1]) * (1024 if found[2] == "Gi" else 1) if found else 0
    # Past 2^63-1 bytes the API server holds a quantity in another form than the one the policy admits.
    if mebibytes <= 0 or mebibytes > _LARGEST_MEBIBYTES:
        shown = value if len(value) <= 40 else f"{value[:20]}… ({len(value)} characters)"
        raise cfg.fail(key, f"must be {what} in Mi or Gi, like 512Mi or 2Gi, below 8Ei (at most "
                            f"{_LARGEST_MEBIBYTES}Mi; got {shown!r})")
    return mebibytes


def channel_tls(cfg: Reader) -> str:
    """`k8sChannelTls`: the stack's own certificate, or a mesh named, one that adds nothing to the bots' pods."""
    if cfg.raw(CHANNEL_TLS_KEY) == MESH_TLS:
        raise cfg.fail(CHANNEL_TLS_KEY, (
            f"is {MESH_TLS!r}: name the mesh, {ISTIO_AMBIENT} (Istio's ambient mode) or {CILIUM} (Cilium's "
            "transparent encryption). A sidecar mesh (Istio's sidecar mode, Linkerd) injects a proxy and an init "
            "container that the bots' admission policy and Pod Security restricted refuse: with one, set "
            f"`pulumi config set {CHANNEL_TLS_KEY} {STACK_TLS}` (the stack's own certificate) and leave the bots' "
            "namespace out of the mesh (docs/kubernetes.md, \"The channel's TLS\")"))
    return cfg.string(CHANNEL_TLS_KEY, choices=CHANNEL_TLS_CHOICES)
