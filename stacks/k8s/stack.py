"""K8sStack: voicefleet in a Kubernetes cluster its owner already runs, composed of the components beside it.

One explicit provider from the secret kubeconfig (every child gets it through its parent; the program's
default providers are off) -> the dispatcher's and the bots' namespaces and the bots' quota -> the
ServiceAccounts and the dispatcher's RBAC -> the dispatcher's Secret (and with botSecrets the bots' keys' Secret,
stacks/k8s/bot_secret.py, before every bot and the dispatcher, beside the last `up`'s while its replicas drain:
stacks/k8s/bot_secret_generations.py) -> the NetworkPolicies -> with
`k8sStore: in-cluster` the replicas' Valkey -> the dispatcher's Deployment, disruption budget, Service
and Ingress; with `sipEdge`, the SIP edge on its nodes' network, in a namespace of its own
(stacks/k8s/sip_edge.py), before the dispatcher, which is told its control API. The images are built
by the stack and pushed to `k8sRegistry` (stacks/k8s/images.py), with
the registry's pull Secrets when the stack signs in to it (stacks/k8s/pull_secret.py), or built
elsewhere and named by digest; the replicas' store is external (`k8sStoreUrl`) unless the stack runs it
(stacks/k8s/store.py). The bots' admission policy, in either mode, comes before anything that makes a
bot; and the provider waits until the stack's last outputs rule out a change that would delete running
bots (stacks/k8s/last_outputs.py). In the agent-sandbox mode, agent-sandbox itself (installed or adopted:
stacks/k8s/agent_sandbox.py) and the admission policy both come before every template and pool, which
come before the dispatcher: a destroy deletes them in the reverse order, the install last.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pulumi
from pulumi_kubernetes.provider import Provider

from botchannel.contract import CHANNEL_PATH, CHANNEL_URL_VARIABLE
from dispatcher.machines.k8s.settings import AGENT_SANDBOX, DEFAULT_WARM_POOL, MODEL_SERVICE_VARIABLE
from stacks.config import rotation_last_up
from stacks.config.bot import web_transports
from stacks.config.channel import channel_secrets
from stacks.config.dispatcher_keys import plain_environment
from stacks.config.k8s import IN_CLUSTER, STACK_TLS
from stacks.config.model import KubernetesSettings, Settings
from stacks.config.reader import SettingsError
from stacks.config.releases import OUTPUT as RELEASES_OUTPUT
from stacks.config.releases import VARIABLE as RELEASES_VARIABLE
from stacks.config.releases import StackRelease, catalogue
from stacks.config.secrets import dispatcher_secret_names, stored_secrets
from stacks.config.sip_edge import SECRET_VARIABLE as SIP_EDGE_SECRET
from stacks.config.sip_edge import URL_VARIABLE as SIP_EDGE_URL
from stacks.config.sip_edge import SipEdgeSettings, origination_uri
from stacks.config.store import URL_VARIABLE
from stacks.k8s import bot_secret, cells, last_outputs
from stacks.k8s.access import BOT_ACCOUNT, DISPATCHER_ACCOUNT, Access, AccessArgs
from stacks.k8s.admission import AdmissionArgs, BotAdmission
from stacks.k8s.agent_sandbox import AgentSandbox
from stacks.k8s.api_endpoint import api_server_address
from stacks.k8s.bot_env_allow import told_pins
from stacks.k8s.bot_pod_fields import told_resources
from stacks.k8s.bot_pods_policy import bot_pod, launchable_images, pod_lifetime
from stacks.k8s.bot_secret_generations import Generations
from stacks.k8s.bot_secret_keys import BotSecretKeys
from stacks.k8s.bot_trace_env import told_traces
from stacks.k8s.channel_tls import ChannelTls, ChannelTlsArgs
from stacks.k8s.cluster_identifier import refuse_another_cluster
from stacks.k8s.dispatcher import CHANNEL_SERVICE_PORT, Dispatcher, DispatcherArgs
from stacks.k8s.images import built_images, edge_image
from stacks.k8s.last_outputs import template_digest
from stacks.k8s.mesh import kept_mesh, namespace_labels
from stacks.k8s.model_admission import ModelAdmission, ModelAdmissionArgs
from stacks.k8s.model_service import ModelServiceArgs, ModelServiceStack, model_pods, model_selector
from stacks.k8s.namespaces import Namespaces, NamespacesArgs
from stacks.k8s.network_policies import NetworkPolicies, NetworkPoliciesArgs, bot_egress, unreachable_urls
from stacks.k8s.pool_template import pool_pod
from stacks.k8s.pull_secret import pull_secrets
from stacks.k8s.recordings import (
    recording_environment,
    recording_secret,
    refuse_unreachable_store,
    retention_rules,
)
from stacks.k8s.release_pools import longest_bot_seconds, release_pools
from stacks.k8s.secrets import DispatcherSecret
from stacks.k8s.sip_edge import SipEdge, SipEdgeArgs, node_firewall, sip_edge_ranges
from stacks.k8s.sip_edge import control_url_of as sip_edge_control_url
from stacks.k8s.sip_edge import namespace_of as sip_edge_namespace
from stacks.k8s.store import InClusterStore, InClusterStoreArgs
from stacks.k8s.warm_pool import WarmPool, WarmPoolArgs
from stacks.k8s.web_identity import ROLE_ANNOTATION
from stacks.shared import contract
from stacks.shared.release_builds import BUILDS_OUTPUT, advance, remembered, up_time
from stacks.shared.turn_server import external_environment


def k8s_environment(settings: Settings, service_host: str, port: int) -> dict[str, str]:
    """The dispatcher's plain settings: its stack keys' (stacks/config/dispatcher_keys.py: sessions, the
    reserve, the bots' image, size and runtime class, the mode), the pods provider's own (contract.K8S_ENV),
    and with the channel the URL bots dial: the dispatcher's Service's channel port, inside the cluster;
    in the agent-sandbox mode the stack's pool (contract.K8S_SANDBOX_ENV); with an external TURN service,
    its URLs and the web sessions offered (contract.TURN_ENV). The channel is `wss://` with the stack's
    own certificate (contract.K8S_CHANNEL_TLS_ENV), `ws://` under a mesh's mTLS."""
    cfg = settings.kubernetes
    assert cfg is not None
    turn = settings.turn
    tls = stack_tls(settings)
    return {
        # BOT_IMAGE among them when k8sBotImage names it: a built image is known once it is pushed, and
        # K8sStack adds it then.
        **plain_environment(settings),
        **contract.serving_environment("k8s"),
        "BOT_CHANNEL_PORT": str(contract.DISPATCHER_CHANNEL_PORT),
        "K8S_NAMESPACE": cfg.bot_namespace,
        "K8S_SERVICE_ACCOUNT": BOT_ACCOUNT,
        **({"K8S_WARM_POOL": DEFAULT_WARM_POOL} if cfg.mode == AGENT_SANDBOX else {}),
        **({CHANNEL_URL_VARIABLE: f"{'wss' if tls else 'ws'}://{service_host}:{port}{CHANNEL_PATH}"}
           if channel_secrets(settings) else {}),
        **(ChannelTls.environment() if tls else {}),
        **({} if turn is None else external_environment(turn.external_urls, web_transports(settings))),
        **settings.observability.dispatcher_environment(),
        # the shared model service the stack runs: the dispatcher reads its capacity, and tells every bot it
        **({MODEL_SERVICE_VARIABLE: cfg.model.url} if cfg.model is not None else {}),
    }


def stack_tls(settings: Settings) -> bool:
    """Whether the stack makes the channel's certificate: with a channel, unless a mesh's mTLS encrypts it."""
    assert settings.kubernetes is not None
    return bool(channel_secrets(settings)) and settings.kubernetes.channel_tls == STACK_TLS


def refuse_unreachable_relay(settings: Settings) -> None:
    """A turnUrls address the bots' egress leaves out would fail every relayed session: refused at preview."""
    cfg = settings.kubernetes
    assert cfg is not None
    if settings.turn is None or not (closed := unreachable_urls(settings.turn.external_urls, cfg.bot_egress_except)):
        return
    raise SettingsError(
        f"Invalid stack configuration: turnUrls names {', '.join(closed)}, which the bots cannot reach: their egress "
        "is the public IPv4 internet only, without private, shared or link-local ranges, IPv6, or k8sBotEgressExcept. "
        "Name the TURN service by a public IPv4 address or a DNS name that resolves to one, or take that address out "
        "of k8sBotEgressExcept (docs/kubernetes.md, \"A TURN relay\")")


def bot_pods(settings: Settings) -> int:
    """The bots' quota: every session the dispatcher admits, and the reserve's idle bots beside them."""
    return settings.max_concurrent_sessions + settings.reserve.max_idle


# The default pool (K8S_WARM_POOL) while the stack lists releases, as it always does in the agent-sandbox
# mode: every start takes a listed release's pool, and the planner sizes those alone (it follows RELEASES
# from its start), so warm pods here would serve no one. It stays, empty: the dispatcher reads it at start
# and a claim without a release label (made before the pools per release) names it.
DEFAULT_POOL_REPLICAS = 0


def bot_egress_except(cfg: KubernetesSettings, edge: SipEdgeSettings | None = None) -> pulumi.Output[list[str]]:
    """`k8sBotEgressExcept`, the SIP edge's public address (the bots' egress is the internet, the edge's
    ports in it), and the API server's address when the kubeconfig names it by one: the address is not a
    secret, though the kubeconfig it is read from is (so the policy's diff shows it)."""
    server = cfg.kubeconfig.apply(lambda kubeconfig: api_server_address(kubeconfig, cfg.context))
    listed = [*cfg.bot_egress_except, *sip_edge_ranges(edge)]

    def left_out(address: str | None) -> list[str]:
        if address is None or not ipaddress.IPv4Address(address).is_global:
            # Said once a stack lists nothing: a listed range is taken as the endpoint's, and a
            # loopback address is a local cluster's (kind, minikube), with no public endpoint.
            if not cfg.bot_egress_except and not (address and ipaddress.IPv4Address(address).is_loopback):
                pulumi.log.warn("the kubeconfig names its API server not by a public IPv4 address: if it has a public "
                                "endpoint, list that endpoint's addresses in k8sBotEgressExcept, or bots can reach it "
                                "(docs/kubernetes.md, \"The bots' egress\")")
            return list(dict.fromkeys(listed))
        return list(dict.fromkeys([*listed, f"{address}/32"]))

    return pulumi.Output.unsecret(server).apply(left_out)


def in_cluster_store(name: str, settings: Settings, namespace: pulumi.Output[str], labels: dict[str, str],
                     dispatcher_selector: dict[str, str], mesh: pulumi.Input[str],
                     opts: pulumi.ResourceOptions) -> InClusterStore | None:
    """With `k8sStore: in-cluster`, the replicas' Valkey beside the dispatcher, its user's password the
    stack's storePassword (and the one a rotation replaces)."""
    cfg = settings.kubernetes
    assert cfg is not None
    if cfg.store != IN_CLUSTER:
        return None
    password, previous = settings.secrets.store_password, settings.secrets.store_previous_password
    assert password is not None  # stacks/config/k8s.py requires it with the in-cluster store
    selector = {"app.kubernetes.io/name": f"{settings.project}-store", "app.kubernetes.io/instance": settings.stack}
    return InClusterStore(f"{name}-store", InClusterStoreArgs(
        namespace=namespace, namespace_name=cfg.dispatcher_namespace,
        passwords=[password, *([previous] if previous is not None else [])], storage_mib=cfg.store_mebibytes,
        labels=labels, selector=selector, dispatcher_selector=dispatcher_selector, channel_tls=mesh),
        opts=opts)


class K8sStack(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        assert settings.kubernetes is not None
        cfg = settings.kubernetes
        refuse_unreachable_relay(settings)
        refuse_unreachable_store(settings)
        # k8sCells: each cell's token and CA, mounted from its Secret (a clashing path refused here, at preview).
        cell_volumes, cell_mounts = cells.volumes(cfg.cells)
        service_host = f"{contract.DISPATCHER_CONTAINER_NAME}.{cfg.dispatcher_namespace}.svc"
        environment = k8s_environment(settings, service_host, CHANNEL_SERVICE_PORT)
        for note in cells.unmade(cfg.cells, dispatcher_namespace=cfg.dispatcher_namespace, bot_account=BOT_ACCOUNT,
                                 channel_url=environment.get(CHANNEL_URL_VARIABLE), bot_secret=cfg.bot_secret,
                                 ca_configmap=environment.get("K8S_BOT_CHANNEL_CA_CONFIGMAP")):
            pulumi.log.info(f"voicefleet:k8sCells {note}")
        if (headers := bot_secret.team_secret_note(settings)) is not None:
            pulumi.log.info(headers)
        # Built beside this component, not in it: the provider waits on the check below, which compares the
        # bots' template, which names the built image (a child would wait on the provider: a cycle).
        images = built_images(name, settings, pulumi.ResourceOptions())
        bot_image = images.bot if images is not None else pulumi.Output.from_input(cfg.bot_image or "")
        dispatcher_image = images.dispatcher if images is not None else cfg.dispatcher_image or ""
        sip_edge_image = edge_image(name, settings, images, pulumi.ResourceOptions())
        # The bots' keys by reference: the Secret's name, known at a preview (stacks/k8s/bot_secret.py).
        keys_name = bot_secret.secret_name(settings)
        with_keys = pulumi.Output.from_input(keys_name).apply(
            lambda secret: {**environment, **({bot_secret.VARIABLE: secret} if secret else {})})
        launching = pulumi.Output.all(with_keys, bot_image).apply(lambda found: {**found[0], "BOT_IMAGE": found[1]})
        template = launching.apply(pool_pod) if cfg.mode == AGENT_SANDBOX else None
        labels = {"app.kubernetes.io/part-of": settings.project, "app.kubernetes.io/managed-by": "pulumi",
                  "voicefleet.io/stack": settings.stack, "voicefleet.io/environment": settings.environment}
        selector = {"app.kubernetes.io/name": f"{settings.project}-dispatcher",
                    "app.kubernetes.io/instance": settings.stack}
        # The pools' metadata too: their labels, and the settings that name the pools per release and retire one.
        metadata = {"labels": labels, "release": settings.releases.name, "releasesKept": settings.releases.kept}
        # Their egress as the templates carry it (the mesh's port among it), from the configured namespace names:
        # the namespaces' own outputs wait on the provider, which waits on this digest.
        egress_except = bot_egress_except(cfg, settings.sip_edge)
        egress = pulumi.Output.from_input(bot_egress(NetworkPoliciesArgs(
            dispatcher_namespace=cfg.dispatcher_namespace, bot_namespace=cfg.bot_namespace,
            ingress_namespace=cfg.ingress_namespace, dispatcher_selector=selector, labels=labels,
            egress_except=egress_except, dns_addresses=cfg.dns_addresses, channel_tls=cfg.channel_tls,
            model=model_pods(cfg.model, settings.project, settings.stack))))
        digest = pulumi.Output.all(template, egress).apply(
            lambda found: template_digest(found[0], found[1], metadata)) if template is not None else None
        # Nothing is made in the cluster before the last `up`'s outputs rule out a change they refuse.
        recorded = last_outputs.read(name)
        # A cell the last `up` listed and this one does not: its running sessions are warned of (stacks/k8s/cells.py).
        last = last_outputs.checked(recorded, cfg, digest).apply(lambda found: cells.warn_removed(found, cfg.cells))
        kubeconfig = pulumi.Output.all(last, cfg.kubeconfig, settings.secrets_ready).apply(lambda found: str(found[1]))
        # With a cluster identifier, a new endpoint or CA for the same cluster is an update of the provider,
        # not a replacement of everything it made (docs/kubernetes.md, "Changing the kubeconfig").
        # Never upsert: an object of the same name already in the cluster is an error, not adopted (and then
        # deleted by the replacement's clean-up); PULUMI_K8S_UPSERT_EXISTING_OBJECTS must not turn it on.
        # Server-side apply, pinned: pulumi-kubernetes v4 defaults it on, but its Configure reads the provider's
        # argument first, then PULUMI_K8S_ENABLE_SERVER_SIDE_APPLY (provider/pkg/provider/provider.go), and the
        # Python SDK copies that variable into the argument left unset, so a deployer's environment could otherwise
        # switch this stack to client-side apply: other field managers, a last-applied annotation, other diffs.
        provider = Provider(name, kubeconfig=kubeconfig, context=cfg.context,
                            cluster_identifier=cfg.cluster_identifier, upsert_existing_objects=False,
                            enable_server_side_apply=True)
        refuse_another_cluster(cfg)
        super().__init__("voicefleet:k8s:K8sStack", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        child = pulumi.ResourceOptions(parent=self)
        namespaces = Namespaces(name, NamespacesArgs(
            dispatcher=cfg.dispatcher_namespace, bots=cfg.bot_namespace, labels=labels, bot_pods=bot_pods(settings),
            pod_millicores=cfg.pod_millicores, pod_mebibytes=cfg.pod_mebibytes, protect=settings.protect,
            mesh_labels=namespace_labels(cfg.channel_tls)), opts=child)
        pulls = pull_secrets(name, cfg.registry, (namespaces.dispatcher, namespaces.bots), labels, child)
        # This `up`'s Secret from botSecrets, and the earlier ones kept while their replicas drain.
        keys = Generations(name, settings, keys_name if cfg.bot_secret is None else None, recorded,
                           namespaces.bots, labels, child)
        # The policy first, and deleted last: a policy never looks again at what was made before it, so
        # the pool and the dispatcher come after it (the API server takes about a second to enforce it).
        admission = BotAdmission(name, AdmissionArgs(
            prefix=settings.prefix, bot_namespace=cfg.bot_namespace,
            dispatcher=(cfg.dispatcher_namespace, DISPATCHER_ACCOUNT), bot_account=BOT_ACCOUNT, labels=labels,
            mode=cfg.mode, controller=cfg.sandbox_controller, deployer=cfg.deployer or "",
            bot_pod=None if template is not None else pulumi.Output.all(last, launching, keys.plan).apply(
                lambda found: bot_pod(found[1], launchable_images(found[1]["BOT_IMAGE"], found[0].bot_image),
                                      found[0].bot_lifetime, settings.bot_permissions.k8s_annotations,
                                      found[0].bot_role, (found[0].bot_secret or "",
                                                          *(kept.name for kept in found[2].kept)),
                                      found[0].traces, found[0].pins, found[0].resources))),
            opts=child)
        access = Access(name, AccessArgs(prefix=settings.prefix, dispatcher_namespace=namespaces.dispatcher,
                                         bot_namespace=namespaces.bots, labels=labels, mode=cfg.mode,
                                         bot_annotations=settings.bot_permissions.k8s_annotations,
                                         pull_secrets=None if pulls is None else (pulls.dispatcher, pulls.bots),
                                         bot_after=admission.objects),
                        opts=child)
        # The policies keep the last `up`'s mesh while its label may still enrol the pods (stacks/k8s/mesh.py).
        mesh = last.apply(lambda found: kept_mesh(cfg.channel_tls, found.channel_tls))
        store = in_cluster_store(name, settings, namespaces.dispatcher, labels, selector, mesh, child)
        tls = ChannelTls(name, ChannelTlsArgs(
            service=contract.DISPATCHER_CONTAINER_NAME, dispatcher_namespace=cfg.dispatcher_namespace,
            bot_namespace=cfg.bot_namespace, dispatcher_namespace_ref=namespaces.dispatcher,
            bot_namespace_ref=namespaces.bots, labels=labels, stack=settings.stack),
            opts=child) if stack_tls(settings) else None
        # An external store's URL carries its credentials (a secret); the in-cluster one's is plain, its
        # password the stack's storePassword.
        external_url = {URL_VARIABLE: cfg.store_url} if cfg.store_url is not None else {}
        edge = settings.sip_edge
        edge_url = sip_edge_control_url(sip_edge_namespace(cfg.dispatcher_namespace)) if edge is not None else None
        stored = {**stored_secrets(settings, store=True, store_password=store is not None, sip_edge_url=edge_url),
                  **external_url}
        # The deployment secret the edge's credentials are derived from: the dispatcher's alone.
        shared = (SIP_EDGE_SECRET,) if edge is not None else ()
        # The table's secrets (stacks/config/dispatcher_keys.py), each a key of the Secret, by reference (valueFrom).
        secret = DispatcherSecret(f"{name}-dispatcher", namespaces.dispatcher,
                                  {key: stored[key] for key in dispatcher_secret_names(settings, stored, *shared)},
                                  labels, opts=child)
        # The SIP edge on its nodes' network (stacks/k8s/sip_edge.py), calling the dispatcher at its public URL.
        sip_edge = SipEdge(f"{name}-sip-edge", SipEdgeArgs(
            edge=edge, namespace=sip_edge_namespace(cfg.dispatcher_namespace), image=sip_edge_image.ref,
            dispatcher_url=f"https://{cfg.dispatcher_host}", labels=labels, pull_secrets=pulls),
            opts=child) if edge is not None and sip_edge_image is not None else None
        recording = recording_secret(name, settings, namespaces.dispatcher, labels, child)
        if cfg.bot_secret is not None:  # the team's Secret: its keys are held to botSecrets' names as it is written
            BotSecretKeys(f"{name}-bot-secret-keys", settings.prefix, cfg.bot_namespace, labels, opts=child)
        network = NetworkPoliciesArgs(
            dispatcher_namespace=namespaces.dispatcher, bot_namespace=namespaces.bots,
            ingress_namespace=cfg.ingress_namespace, dispatcher_selector=selector, labels=labels,
            egress_except=egress_except, dns_addresses=cfg.dns_addresses, ingress_sources=cfg.ingress_sources,
            channel_tls=mesh, model=model_pods(cfg.model, settings.project, settings.stack))
        policies = NetworkPolicies(name, network, opts=child)
        model = None if cfg.model is None else ModelServiceStack(f"{name}-model", ModelServiceArgs(
            model=cfg.model, labels=labels, selector=model_selector(settings.project, settings.stack),
            bot_namespace=namespaces.bots, dispatcher_namespace=namespaces.dispatcher, dispatcher_selector=selector,
            max_session_seconds=settings.max_session_seconds, channel_tls=mesh,
            after=ModelAdmission(f"{name}-model", ModelAdmissionArgs(
                prefix=settings.prefix, namespace=cfg.model.namespace, image=cfg.model.image, labels=labels),
                opts=child).objects), opts=child)
        # Enrolled in the mesh once every policy takes its tunnel port and probe source (stacks/k8s/mesh.py), the
        # model service's namespace with the stack's two: the bots' streams to it carry every converged call.
        namespaces.enrol(name, (*policies.policies, *(store.policies if store is not None else ()),
                                *((model.policy,) if model is not None else ())),
                         others=(("model", model.namespace),) if model is not None else ())
        # The bots mount the channel's CA and take their account's pull secret, copied at a pod's creation:
        # their pools and pods come after the ConfigMap and the accounts.
        # The bots' keys' Secrets come before them through the values that name them (keys.after).
        before_bots = (*admission.objects, *access.accounts, *(tls.objects if tls is not None else ()))
        bots: tuple[pulumi.Resource, ...] = before_bots
        releases: dict[str, pulumi.Input[str]] = {}
        builds: pulumi.Output[object] | None = None
        if template is not None:
            # The templates' egress is this `up`'s mesh's, as their digest has it.
            template_egress = bot_egress(replace(network, channel_tls=cfg.channel_tls))
            sandbox = AgentSandbox(f"{name}-agent-sandbox", cfg.agent_sandbox, protect=settings.protect, opts=child)
            after, bot_namespace = (*before_bots, *sandbox.objects), sandbox.gate(namespaces.bots)
            pool = WarmPool(name, WarmPoolArgs(
                name=environment["K8S_WARM_POOL"], namespace=bot_namespace, pod_template=keys.after(template),
                egress=template_egress, replicas=DEFAULT_POOL_REPLICAS, labels=labels, after=after,
                sized_by_dispatcher=False), opts=child)
            bots = (*bots, *pool.objects)
            # A template and a pool per listed or retiring release (docs/kubernetes.md, "Pools per release");
            # RELEASES names the listed ones only once their pools exist.
            now, life = up_time(), longest_bot_seconds(settings.max_session_seconds)
            before = remembered(name, self, listed=RELEASES_OUTPUT)
            kept = pulumi.Output.all(before, bot_image).apply(
                lambda found: advance(found[0], {"*": found[1]}, settings.releases, now=now, longest_bot_seconds=life))
            if images is not None:  # the registry keeps each release's image by its tag, as ECR does
                images.tag_release(kept.apply(lambda found: found.current_name))
            made = release_pools(name, before, kept, now=now, life=life, warm_pool=environment["K8S_WARM_POOL"],
                                 namespace=bot_namespace,
                                 pod_for=lambda image: keys.after(with_keys).apply(
                                     lambda env: pool_pod({**env, "BOT_IMAGE": image})),
                                 egress=template_egress, labels=labels, after=after, parent=self)
            releases[RELEASES_VARIABLE] = pulumi.Output.all(kept, made).apply(lambda found: catalogue(
                [StackRelease(b.name, dict(b.images), b.created) for b in found[0].listed], settings.releases))
            builds = kept.apply(lambda found: found.as_output())
        dispatcher = Dispatcher(f"{name}-dispatcher", DispatcherArgs(
            namespace=namespaces.dispatcher, image=dispatcher_image, service_account=access.dispatcher_account,
            environment={**environment, "BOT_IMAGE": bot_image, **releases,
                         **({bot_secret.VARIABLE: keys.after(keys_name)} if keys_name is not None else {}),
                         **({URL_VARIABLE: store.url} if store is not None else {}),
                         **({SIP_EDGE_URL: sip_edge.control_url} if sip_edge is not None else {}),
                         **recording_environment(settings)},
            secret_env=[*secret.env(), *(recording.env() if recording is not None else [])],
            replicas=cfg.dispatcher_replicas,
            cpu=cfg.dispatcher_cpu, memory_mib=settings.dispatcher_memory,
            max_session_seconds=settings.max_session_seconds, host=cfg.dispatcher_host,
            ingress_class=cfg.ingress_class, tls_secret=cfg.tls_secret, labels=labels, selector=selector,
            drain=settings.drain, depends_on=(*access.grants, *access.accounts, *policies.policies, *bots,
                                              *(store.objects if store is not None else ())),
            volumes=(*((tls.volume(),) if tls is not None else ()), *cell_volumes),
            volume_mounts=(*((tls.mount(),) if tls is not None else ()), *cell_mounts),
            pod_notes=tls.annotations if tls is not None else {}), opts=child)
        self.outputs = {
            "cloud": "k8s",
            # Read back by the next `up` (stacks/config/rotation_last_up.py), once the dispatcher took this step.
            "secretsRotation": rotation_last_up.exported(settings.secrets_rotation, dispatcher.deployment),
            "dispatcherUrl": dispatcher.url,
            "dispatcherNamespace": namespaces.dispatcher,
            "botNamespace": namespaces.bots,
            "dispatcherService": dispatcher.service,
            "dispatcherImage": dispatcher_image,
            "botImage": bot_image,
            "machinesEnvironment": contract.machines_environment({**environment, "BOT_IMAGE": bot_image}),
            "drained": settings.drain,
            # The address every trunk sends to, and what the nodes' firewall must hold (the stack cannot make it).
            **({"sipEdgeAddress": edge.key.public_address,
                "sipEdgeOriginationUri": origination_uri(str(edge.key.public_address)),
                "sipEdgeNodeFirewall": node_firewall(edge)} if edge is not None else {}),
            **({"modelServiceUrl": model.url, last_outputs.MODEL_NAMESPACE: cfg.model.namespace,
                last_outputs.MODEL_REPLICAS: cfg.model.replicas} if model is not None and cfg.model is not None
               else {}),
            last_outputs.CHANNEL_TLS: cfg.channel_tls,
            # The cells its dispatcher looks sessions up in: the next `up` warns of one it removes.
            **({last_outputs.CELL_NAMES: [stacked.cell.name for stacked in cfg.cells]} if cfg.cells else {}),
            # The channel's certificate's and CA's ends (stacks/k8s/channel_tls.py): renewed by the `up`s before.
            **(tls.expiries if tls is not None else {}),
            # Recording: the lifecycle rules the operator's S3-compatible store needs.
            **({"recordingRetention": retention_rules(settings)} if settings.recording is not None else {}),
            # The releases offered (RELEASES), and the listed and retiring ones with their times, which the
            # next `up` reads back (stacks/shared/release_builds.py): the releases it keeps a pool for.
            **({RELEASES_OUTPUT: releases[RELEASES_VARIABLE]} if releases else {}),
            **({BUILDS_OUTPUT: builds} if builds is not None else {}),
            # Read back by the next `up` (stacks/k8s/last_outputs.py): a name and a slot, never a value.
            **({last_outputs.KEYS_SECRET: keys_name, last_outputs.KEYS_SLOT: keys.slot}
               if keys_name is not None and cfg.bot_secret is None else {}),
            last_outputs.KEYS_KEPT: keys.kept_after(dispatcher.deployment),
            last_outputs.KEYS_GRACE: keys.grace,
            **({last_outputs.DEPLOYER: cfg.deployer, last_outputs.TEMPLATE: digest,
                last_outputs.SANDBOX_SOURCE: cfg.agent_sandbox} if digest is not None else
               {last_outputs.BOT_LIFETIME: pod_lifetime(environment),
                # the trace collector its pods are told, which the next `up`'s policy still admits while it rolls
                last_outputs.BOT_TRACES: launching.apply(told_traces),
                last_outputs.BOT_PINS: launching.apply(told_pins),  # its channel, model service, Twilio region, logs
                last_outputs.BOT_RESOURCES: launching.apply(told_resources),
                **({last_outputs.BOT_ROLE: role} if (role := settings.bot_permissions.k8s_annotations.get(
                    ROLE_ANNOTATION)) else {}),
                **({last_outputs.BOT_SECRET: keys_name} if keys_name is not None else {})}),
        }
        self.register_outputs(self.outputs)
