"""AzureStack: one environment of voicefleet on Azure, composed of the components beside it.

Resource group -> Container Registry -> images pinned by digest -> virtual network -> identities
and their roles -> coordination store (several replicas) -> Key Vault (private endpoint) -> the
dispatcher's secret grants -> Log Analytics -> the launch policy -> the SIP edge's addresses, rules and
identity -> Container Apps dispatcher, which may create container groups (the bots, `MACHINES=aci`) in this
resource group only, and only such as the launch policy admits (stacks/azure/launch_policy.py) -> the SIP
edge's VM (stacks/azure/sip_edge.py). With `protect`, delete locks on the
registry, vault and store (stacks/azure/locks.py). Azure's provider has no default tags: every resource
is given the stack's tags itself, and every resource goes through the explicit provider.
"""

from __future__ import annotations

import pulumi
import pulumi_azure_native.authorization as azure_authorization
import pulumi_azure_native.resources as azure_resources
from pulumi_azure_native.provider import Provider

from botchannel.contract import CHANNEL_URL_VARIABLE
from dispatcher.regions.config import ACCEPTED_SECRET_VARIABLE as REGION_ACCEPTED_SECRET_VARIABLE
from dispatcher.releases.catalogue import ANY_TRANSPORT
from images.component import Images, ImagesArgs
from stacks.azure import naming
from stacks.azure.dispatcher import Dispatcher, DispatcherArgs
from stacks.azure.identity import Identities, IdentitiesArgs
from stacks.azure.launch_policy import LaunchPolicy, LaunchPolicyArgs
from stacks.azure.locks import delete_lock
from stacks.azure.machines import AciTarget, aci_environment
from stacks.azure.network import Network, NetworkArgs, subnet_ranges
from stacks.azure.observability import Observability, ObservabilityArgs, metric_environment
from stacks.azure.recordings import RecordingStore
from stacks.azure.registry import Registry
from stacks.azure.relay import TurnRelay, TurnRelayArgs
from stacks.azure.secrets import SecretStore, SecretStoreArgs
from stacks.azure.sip_edge import SipEdge, SipEdgeArgs, control_url_of
from stacks.azure.store import OUTPUT as STORE_SIZE_OUTPUT
from stacks.azure.store import CoordinationStore, CoordinationStoreArgs
from stacks.config import aci_cells, rotation_last_up
from stacks.config.bot import image_args, web_transports
from stacks.config.bot_plain_env import bot_plain_environment
from stacks.config.channel import channel_secrets, channel_url
from stacks.config.dispatcher_keys import plain_environment
from stacks.config.model import Settings
from stacks.config.releases import OUTPUT as RELEASES_OUTPUT
from stacks.config.releases import catalogue
from stacks.config.secrets import dispatcher_secret_names, stored_secrets
from stacks.config.sip_edge import SECRET_VARIABLE as SIP_EDGE_SECRET
from stacks.config.sip_edge import URL_VARIABLE as SIP_EDGE_URL
from stacks.config.sip_edge import edge_outputs
from stacks.config.store import PASSWORD_VARIABLE, URL_VARIABLE
from stacks.config.turn import TurnSettings, relay_secret_names
from stacks.shared import contract, recording_last_up, turn_server
from stacks.shared.releases import Rolled, rolled
from stacks.shared.turn_server import turn_urls

# Secrets set for a while and unset again stay in Key Vault while unset (stacks/azure/secrets.py):
# the removable ones, but the regions' (regions are refused on Azure).
KEPT_SECRETS = tuple(name for name in contract.REMOVABLE_SECRETS if name != REGION_ACCEPTED_SECRET_VARIABLE)


class AzureStack(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        assert settings.azure is not None
        cfg = settings.azure
        # Nothing is made or changed before the last `up`'s recording store and secrets' rotation step rule out
        # a change they refuse.
        last_store = recording_last_up.checked(name, "azure", settings.recording, settings.recording_remove_store)
        checked = pulumi.Output.all(last_store, settings.secrets_ready)
        provider = Provider(name, subscription_id=cfg.subscription_id,
                            location=checked.apply(lambda _: cfg.location))
        super().__init__("voicefleet:azure:AzureStack", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(settings.tags)
        prod = settings.environment == "prod"
        # A destroy leaves the group with the network in it (stacks/azure/network.py: a subnet can stay held).
        group = azure_resources.ResourceGroup(name, resource_group_name=settings.prefix, location=cfg.location,
                                              tags=tags, opts=pulumi.ResourceOptions(
                                                  parent=self, protect=settings.protect, retain_on_delete=True))
        registry = Registry(name, registry_name=naming.registry_name(cfg.subscription_id, settings.prefix),
                            resource_group=group.name, location=cfg.location, sku="Standard" if prod else "Basic",
                            tags=tags, protect=settings.protect, opts=child)
        roles = ("bot", "dispatcher", *(("bot-webrtc",) if settings.turn else ()))
        images = Images(name, ImagesArgs(registry=registry.login(), repositories=registry.urls(roles),
                                         **image_args(settings)), opts=child)
        network = Network(name, NetworkArgs(resource_group=group.name, location=cfg.location, cidr=cfg.vnet_cidr,
                                            tags=tags), opts=child)
        own = f"/subscriptions/{cfg.subscription_id}/resourceGroups/{settings.prefix}"  # the group's id
        identities = Identities(name, IdentitiesArgs(
            subscription_id=cfg.subscription_id, prefix=settings.prefix, resource_group=group.name,
            resource_group_id=group.id, location=cfg.location, registry_id=registry.id,
            bots_subnet_id=network.subnet_ids["bots"], tags=tags,
            bot_permissions=[(a.role, a.scope) for a in settings.bot_permissions.azure_assignments],
            cell_scopes=_cell_scopes(cfg.aci_cells, own), cell_subnets=_cell_subnets(cfg.aci_cells)), opts=child)
        for unmade in aci_cells.unmade(aci_cells.listed(cfg.aci_cells), own):
            pulumi.log.warn(f"aciCells {unmade}", resource=self)
        recordings = RecordingStore(
            f"{name}-recordings", settings.recording, subscription_id=cfg.subscription_id, prefix=settings.prefix,
            resource_group=group.name, location=cfg.location,
            dispatcher_principal_id=identities.dispatcher.principal_id, tags=tags, opts=child) \
            if settings.recording is not None else None
        store = CoordinationStore(f"{name}-store", CoordinationStoreArgs(
            cluster_name=naming.redis_name(cfg.subscription_id, settings.prefix), resource_group=group.name,
            location=cfg.location, vnet_id=network.vnet_id, subnet_id=network.subnet_ids["store"],
            sku=cfg.store_sku, high_availability=prod, protect=settings.protect,
            tags=tags), opts=child) if cfg.store else None
        # The edge's credentials in the vault are derived for its control URL, on its static private address.
        sip_edge_url = control_url_of(subnet_ranges(cfg.vnet_cidr)["sip"]) if settings.sip_edge is not None else None
        values: dict[str, pulumi.Input[str]] = {
            **stored_secrets(settings, store=cfg.store, store_password=False, sip_edge_url=sip_edge_url),
            **({PASSWORD_VARIABLE: store.password} if store is not None else {})}
        client = azure_authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        secrets = SecretStore(name, SecretStoreArgs(
            vault_name=naming.key_vault_name(cfg.subscription_id, settings.stack), subscription_id=cfg.subscription_id,
            resource_group=group.name, location=cfg.location, tenant_id=client.tenant_id,
            deployer_object_id=client.object_id, values=values, kept=KEPT_SECRETS, protect=settings.protect,
            retention_days=cfg.key_vault_retention_days, purge_protection=cfg.key_vault_purge_protection, tags=tags,
            vnet_id=network.vnet_id, endpoint_subnet_id=network.subnet_ids["store"],
            allowed_ips=cfg.key_vault_allowed_ips), opts=child)
        if settings.protect:  # Azure-side delete locks, beside Pulumi's protect (stacks/azure/locks.py)
            for what, scope, children in (("registry", registry.id, []), ("vault", secrets.vault.id, secrets.ready),
                                          *((("store", store.cluster_id, store.ready),) if store is not None else ())):
                delete_lock(f"{name}-{what}", scope, self, children)
        self._name, self._settings = name, settings
        turn = turn_urls(settings.turn, lambda found: self._relay(found, group.name, network, secrets, tags))
        bot_environment = bot_plain_environment(settings)  # plain: ACI_BOT_SETTINGS, and the policy's variables
        bot_secret_names = tuple(sorted({*settings.secrets.bot, *settings.observability.bot_secret_names()}))
        # The table's secrets the vault holds, and the managed store's own key (a resource's, no stack key).
        dispatcher_secrets = dispatcher_secret_names(settings, values, *([PASSWORD_VARIABLE] if store else []))
        edge = settings.sip_edge
        if edge is not None and SIP_EDGE_SECRET not in dispatcher_secrets:
            dispatcher_secrets = (*dispatcher_secrets, SIP_EDGE_SECRET)  # the control API's, a trunk's price's
        ranges = subnet_ranges(cfg.vnet_cidr)
        sip_edge = SipEdge(f"{name}-sip-edge", SipEdgeArgs(
            edge=edge, subscription_id=cfg.subscription_id, resource_group=group.name, location=cfg.location,
            subnet_id=network.subnet_ids["sip"], subnet_range=ranges["sip"], dispatcher_range=ranges["dispatcher"],
            vault_range=ranges["store"], secrets=secrets, identity_name=f"{settings.prefix}-sip-edge", tags=tags,
            protect=settings.protect), opts=child) if edge is not None else None
        edge_url = {SIP_EDGE_URL: sip_edge.control_url} if sip_edge is not None else {}
        # The dispatcher reads its own secrets and, to hand them to each bot, the bots' (by reference).
        grants = secrets.grant_access("dispatcher", identities.dispatcher.principal_id,
                                      tuple(sorted({*dispatcher_secrets, *bot_secret_names})))
        observability = Observability(f"{name}-observability", ObservabilityArgs(
            prefix=settings.prefix, resource_group=group.name, location=cfg.location,
            namespace=settings.metric_namespace, retention_days=cfg.log_retention_days,
            app_name=naming.container_app_name(settings.stack), reserve=bool(channel_secrets(settings)),
            store=store is not None, action_group_id=cfg.alarm_action_group_id, tags=tags,
            sip_edge=edge is not None, always_running=cfg.dispatcher_min_replicas >= 1 and not settings.drain),
            opts=child)
        app_name = naming.container_app_name(settings.stack)
        rolled_releases = self._releases(images)
        releases = rolled_releases.apply(lambda found: catalogue(found.after, settings.releases))
        launch = LaunchPolicy(name, LaunchPolicyArgs(
            subscription_id=cfg.subscription_id, prefix=settings.prefix, resource_group_id=group.id,
            subnet_id=network.subnet_ids["bots"],
            images=rolled_releases.apply(lambda found: found.references()),
            variables=(*bot_environment, *bot_secret_names),
            cells=tuple((cell.name, cell.subscription_id, cell.scope, cell.subnet_id)
                        for cell in aci_cells.listed(cfg.aci_cells) if cell.scope.lower() != own.lower())),
            opts=child)
        target = AciTarget(
            resource_group=group.name, stack=settings.stack, dispatcher_client_id=identities.dispatcher.client_id,
            bot_image=images.bot, bot_identity_id=identities.bot.id, registry=registry.login_server,
            subnet_id=network.subnet_ids["bots"], bot_settings=bot_environment,
            bot_secrets=secrets.references(bot_secret_names) if bot_secret_names else None,
            webrtc_image=images.bot_webrtc, releases=releases)
        dispatcher = Dispatcher(f"{name}-dispatcher", DispatcherArgs(
            app_name=app_name, resource_group=group.name, location=cfg.location,
            subnet_id=network.subnet_ids["dispatcher"], workspace_id=observability.workspace_id,
            image=images.dispatcher, registry=registry.login_server, identity_id=identities.dispatcher.id,
            environment=lambda host: {**self._environment(settings, target, store, host, turn),
                                       **self._recording_environment(settings, recordings), **edge_url},
            secrets=secrets,
            secret_names=dispatcher_secrets, cpu=cfg.dispatcher_cpu,
            memory_mib=settings.dispatcher_memory, min_replicas=cfg.dispatcher_min_replicas,
            max_replicas=cfg.dispatcher_max_replicas, max_session_seconds=settings.max_session_seconds, tags=tags,
            # Container Apps fails a revision whose identity cannot yet pull its image or read a secret
            # (or whose network cannot yet reach the vault); no bot launches before the policy holds.
            depends_on=(*identities.grants, *grants, *secrets.ready, launch.assignment, *launch.cells,
                        *(store.ready if store is not None else ()),
                        *(recordings.grants if recordings is not None else ())),
            drain=settings.drain), opts=child)
        if sip_edge is not None:
            sip_edge.run(dispatcher_url=dispatcher.url, image=images.dispatcher, registry_id=registry.id,
                         registry=registry.login_server)
        self.outputs = {
            "cloud": "azure",
            # Read back by the next `up` (stacks/config/rotation_last_up.py), once the dispatcher took this step.
            "secretsRotation": rotation_last_up.exported(settings.secrets_rotation, dispatcher.app_name),
            "location": cfg.location,
            "resourceGroup": group.name,
            "dispatcherUrl": dispatcher.url,
            "dispatcherApp": dispatcher.app_name,
            "botImage": images.bot,
            "dispatcherImage": images.dispatcher,
            "registry": registry.login_server,
            "keyVault": secrets.vault.name,
            "dispatcherIdentity": identities.dispatcher.id,
            "botIdentity": identities.bot.id,
            "botEgressIp": network.egress_ip,
            "secretIds": secrets.ids,
            "machinesEnvironment": contract.machines_environment(dict(dispatcher.environment)),
            # The releases the dispatcher offers (RELEASES), which the next `up` reads back.
            RELEASES_OUTPUT: releases,
            "drained": settings.drain,
            "workspaceId": observability.workspace_id,
            "alarmNames": observability.alert_names,
            **({"turnUrls": turn} if turn is not None else {}),
            # The trunk's origination URIs (Twilio Elastic SIP Trunking, Telnyx): where its calls come in, UDP and TLS.
            **edge_outputs(sip_edge.public_ip if sip_edge is not None else None, edge),
            **({"recordingAccount": recordings.account_name} if recordings is not None else {}),
            # The store's size, read back by the next `up` (stacks/azure/store.py, scale_warning).
            **({STORE_SIZE_OUTPUT: store.sku} if store is not None else {}),
            # Read back by the next `up` (stacks/shared/recording_last_up.py).
            **({recording_last_up.OUTPUT: recording_last_up.store_output(settings.recording, last_store,
                                                                         recordings.holds)}
               if recordings is not None and settings.recording is not None else {}),
        }
        self.register_outputs(self.outputs)

    def _releases(self, images: Images) -> pulumi.Output[Rolled]:
        """The releases before and after this `up` (stacks/shared/releases.py): an ACI release is its images by
        digest, which the launch policy admits (those of both lists, so the dispatcher this `up`
        replaces may still launch what it lists), and which the registry never deletes by itself
        (stacks/azure/registry.py)."""
        built: dict[str, pulumi.Input[str]] = {ANY_TRANSPORT: images.bot}
        if images.bot_webrtc is not None:
            built["webrtc"] = images.bot_webrtc
        return rolled(self._name, self._settings.releases, built, self)

    def _relay(self, turn: TurnSettings, group: pulumi.Input[str], network: Network, secrets: SecretStore,
               tags: dict[str, str]) -> pulumi.Output[list[str]]:
        """coturn on a VM with a static address (stacks/azure/relay.py)."""
        assert self._settings.azure is not None
        return TurnRelay(f"{self._name}-turn", TurnRelayArgs(
            turn=turn, resource_group=group, location=self._settings.azure.location,
            subnet_id=network.subnet_ids["turn"], secrets=secrets, secret_names=relay_secret_names(self._settings),
            vault_prefix=subnet_ranges(self._settings.azure.vnet_cidr)["store"],
            identity_name=f"{self._settings.prefix}-turn", tags=tags), opts=pulumi.ResourceOptions(parent=self)).urls

    @staticmethod
    def _recording_environment(settings: Settings, recordings: RecordingStore | None) -> dict[str, pulumi.Input[str]]:
        """The container's URL (stacks/config/recording.py); nothing with recording off."""
        if recordings is None or settings.recording is None:
            return {}
        return settings.recording.environment(recordings.destination)

    @staticmethod
    def _environment(settings: Settings, target: AciTarget, store: CoordinationStore | None,
                     host: pulumi.Output[str], turn: pulumi.Input[list[str]] | None) -> dict[str, pulumi.Input[str]]:
        """The dispatcher's plain settings: its stack keys' (stacks/config/dispatcher_keys.py), the `aci`
        provider's resources, the URL bots dial with the channel (the app's own HTTPS name), the store's
        URL (its key comes from Key Vault)."""
        return {
            **plain_environment(settings),
            **contract.serving_environment("aci"),
            **aci_environment(target),
            **metric_environment(settings.metric_namespace),
            **({CHANNEL_URL_VARIABLE: channel_url(host)} if channel_secrets(settings) else {}),
            **(turn_server.dispatcher_environment(turn, web_transports(settings))
               if turn is not None and settings.turn is not None else {}),
            **({URL_VARIABLE: store.url} if store is not None else {}),
            **settings.observability.dispatcher_environment(),
        }


def _cell_scopes(setting: str, own: str) -> list[tuple[str, str]]:
    """Each aciCells cell's name and resource group scope, but a cell in the stack's own resource group."""
    return [(cell.name, cell.scope) for cell in aci_cells.listed(setting) if cell.scope.lower() != own.lower()]


def _cell_subnets(setting: str) -> list[tuple[str, str]]:
    """Each aciCells cell's name and its own subnet (`subnet_id`), which the dispatcher joins there."""
    return [(cell.name, cell.subnet_id) for cell in aci_cells.listed(setting) if cell.subnet_id is not None]
