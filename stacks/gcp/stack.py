"""GcpStack: one environment of voicefleet on GCP, composed of the components beside it.

APIs -> Artifact Registry -> images pinned by digest -> egress-only network -> secrets -> bot
instance template (one VM per session), or with `botRuntime: cloudrun` the bot job (one Cloud Run
execution per session, stacks/gcp/bot_job.py) -> TURN relay -> the dispatcher's identity -> coordination
store -> the SIP edge's addresses and firewall -> its grants (the secrets its service references) -> Cloud
Run dispatcher that may create VMs from that template and nothing more -> the SIP edge's VM. Every child
gets the explicit, default-labelled provider through its parent.
"""

from __future__ import annotations

from dataclasses import replace

import pulumi
import pulumi_gcp.organizations as gcp_organizations
import pulumi_gcp.projects as gcp_projects
import pulumi_gcp.serviceaccount as gcp_serviceaccount
from pulumi_gcp.provider import Provider

from images.component import Images, ImagesArgs
from stacks.config import cloud_run, gce_cells, rotation_last_up
from stacks.config.bot import image_args, web_transports
from stacks.config.bot_plain_env import bot_plain_environment
from stacks.config.channel import channel_lifetime_seconds, channel_secrets, channel_url, cloud_run_concurrency
from stacks.config.dispatcher_keys import plain_environment
from stacks.config.limits import GCE_BOOT_GRACE_SECONDS
from stacks.config.model import Settings
from stacks.config.regions import gcp_check
from stacks.config.releases import OUTPUT as RELEASES_OUTPUT
from stacks.config.secrets import dispatcher_secret_names, stored_secrets
from stacks.config.sip_edge import SECRET_VARIABLE as SIP_EDGE_SECRET
from stacks.config.sip_edge import edge_outputs
from stacks.config.turn import TurnSettings, relay_secret_names
from stacks.gcp import log_metrics_last_up
from stacks.gcp.apis import enable_apis
from stacks.gcp.bot_job import BotJob, BotJobArgs
from stacks.gcp.bot_template import BOT_ROLE, WEBRTC_ROLE, BotTemplate, BotTemplateArgs
from stacks.gcp.dispatcher import Dispatcher, DispatcherArgs
from stacks.gcp.egress_network import EGRESS_CIDR, EgressNetwork, EgressNetworkArgs
from stacks.gcp.naming import account_id, dispatcher_service_name, instance_prefix
from stacks.gcp.network import Network, NetworkArgs
from stacks.gcp.observability import Observability, ObservabilityArgs, metric_environment
from stacks.gcp.recordings import RecordingBucket
from stacks.gcp.registry import Registry
from stacks.gcp.relay import TurnRelay, TurnRelayArgs
from stacks.gcp.releases import Releases, bot_images, registry_keeps
from stacks.gcp.secrets import SecretStore, SecretStoreArgs
from stacks.gcp.sip_edge import SipEdge, SipEdgeArgs
from stacks.gcp.store import CoordinationStore, CoordinationStoreArgs
from stacks.shared import contract, recording_last_up
from stacks.shared.release_builds import BUILDS_OUTPUT, advance, remembered, up_time
from stacks.shared.turn_server import turn_urls

# The drop is stamped when the `up` starts (release_builds.up_time), but the old dispatcher keeps
# launching the dropped release until the new revision serves: the build and the rollout, covered here.
ROLLOUT_MARGIN_SECONDS = 3600


class GcpStack(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        assert settings.gcp is not None
        cfg = settings.gcp
        # Nothing is made or changed before the last `up`'s recording store and secrets' rotation step rule out
        # a change they refuse.
        last_store = recording_last_up.checked(name, "gcp", settings.recording, settings.recording_remove_store)
        checked = pulumi.Output.all(last_store, settings.secrets_ready)
        provider = Provider(name, project=cfg.project, region=checked.apply(lambda _: cfg.region),
                            default_labels=dict(settings.tags))
        super().__init__("voicefleet:gcp:GcpStack", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        child = pulumi.ResourceOptions(parent=self)
        self._name, self._settings, self._cfg = name, settings, cfg
        if settings.quota_read is not None:  # accountQuotas: through this provider (defaults are disabled)
            settings.quota_read(pulumi.InvokeOutputOptions(parent=self, provider=provider))

        apis = enable_apis(name, cfg.project, child, store=cfg.store)
        after_apis = pulumi.ResourceOptions(parent=self, depends_on=apis)
        before = remembered(name, self)  # what the last `up` kept
        now, longest_bot = up_time(), self._longest_bot(cfg.bot_runtime)
        registry = Registry(name, prefix=settings.prefix, project=cfg.project, region=cfg.region,
                            keep=settings.image_retention_count, protect=settings.protect, opts=after_apis,
                            releases=before.apply(lambda found: registry_keeps(found, longest_bot, now)))
        roles = ("bot", "dispatcher", *(("bot-webrtc",) if settings.turn else ()))
        images = Images(name, ImagesArgs(registry=registry.login(), repositories=registry.urls(roles),
                                         **image_args(settings)), opts=child)
        network = Network(name, NetworkArgs(region=cfg.region, cidr=cfg.subnet_cidr, depends_on=apis,
                                            serverless_bots=cfg.bot_runtime == "cloudrun",
                                            name=f"{settings.prefix}-bots" if cfg.bot_runtime == "cloudrun" else None),
                          opts=child)
        # The dispatcher's egress network: its store's endpoints, and the SIP edge it may reach.
        egress = EgressNetwork(f"{name}-egress", EgressNetworkArgs(region=cfg.region, name=f"{settings.prefix}-egress",
                                                                  depends_on=apis),
                               opts=child) if cfg.store or settings.sip_edge is not None else None
        # The edge's address before the secret store: its credentials there are derived for its control URL.
        sip_edge = SipEdge(f"{name}-sip-edge", SipEdgeArgs(
            edge=settings.sip_edge, project=cfg.project, region=cfg.region, zone=cfg.zone,
            account_id=account_id(settings.stack, "sip"), network_id=egress.network_id, dispatcher_range=EGRESS_CIDR,
            protect=settings.protect), opts=after_apis) \
            if egress is not None and settings.sip_edge is not None else None
        self._stored = stored_secrets(settings, store=cfg.store, store_password=False,  # Memorystore signs in with IAM
                                      sip_edge_url=sip_edge.control_url if sip_edge is not None else None)
        secrets = SecretStore(name, SecretStoreArgs(
            prefix=settings.prefix,
            values=self._stored,
            protect=settings.protect, depends_on=apis), opts=child)
        self._bot_channel_url = self._channel_url() if channel_secrets(settings) else None
        # botRuntime: a VM per session from a template (gce), or a Cloud Run job's execution per session (cloudrun)
        bot = BotTemplate(f"{name}-bot", self._bot_args(network, registry, secrets), opts=after_apis) \
            if cfg.bot_runtime == "gce" else BotJob(f"{name}-bot", self._job_args(network, secrets), opts=after_apis)
        turn_urls = self._turn_urls(network, secrets, after_apis)
        account = gcp_serviceaccount.Account(f"{name}-dispatcher", account_id=account_id(settings.stack, "dispatcher"),
                                             display_name="voicefleet dispatcher", opts=after_apis)
        member = pulumi.Output.concat("serviceAccount:", account.email)
        store = self._store(egress, member, apis, after_apis) if egress is not None and cfg.store else None
        # The launch grants come first: each release's job binds them (BotJob.grant_run).
        launch = bot.grant_launch("dispatcher", member) if isinstance(bot, BotTemplate) \
            else bot.grant_run("dispatcher", member)
        builds = pulumi.Output.all(before, bot_images(images)).apply(
            lambda found: advance(found[0], found[1], settings.releases, longest_bot_seconds=longest_bot, now=now,
                                  regions=settings.regions is not None))
        releases = Releases(before, builds, bot, settings.releases, self._job_image_role(images), now=now,
                            life=longest_bot)
        # The dispatcher reaches the edge's control API (its status, transfers, calls out) through its egress
        # network; the secret also vouches for a trunk's price.
        args = self._dispatcher_args(images.dispatcher, account.email, bot, releases, secrets, turn_urls,
                                     egress if store is not None or sip_edge is not None else None, store)
        if sip_edge is not None:
            args = replace(args, sip_edge_url=sip_edge.control_url,
                           secret_names=(*args.secret_names, SIP_EDGE_SECRET))
        recordings = RecordingBucket(
            f"{name}-recordings", settings.recording, bucket_name=f"{cfg.project}-{settings.stack}-rec",
            project=cfg.project, location=cfg.region, account=account,
            held_before=last_store.apply(lambda found: found.held is True), opts=after_apis) \
            if settings.recording is not None else None
        if recordings is not None and settings.recording is not None:
            args = replace(args, recording=settings.recording.environment(recordings.destination),
                           depends_on=(*args.depends_on, *recordings.grants))
        # The grants read the very names the service's environment references (secret_names): Cloud
        # Run fails a deployment whose account cannot read one of its secrets.
        grants = self._dispatcher_grants(bot, launch, secrets, member, args.secret_names)
        dispatcher = Dispatcher(f"{name}-dispatcher", replace(args, depends_on=(*grants, *args.depends_on)),
                                opts=after_apis)
        if sip_edge is not None:
            sip_edge.run(secrets=secrets, dispatcher_url=dispatcher.url, image=images.dispatcher,
                         repository_id=registry.repository.repository_id)
        observability = Observability(f"{name}-observability", ObservabilityArgs(
            prefix=settings.prefix, project=cfg.project, namespace=settings.metric_namespace,
            service_name=dispatcher_service_name(settings.prefix), reserve=self._bot_channel_url is not None,
            store=store is not None, notification_channels=cfg.alarm_channels, alert_policies=cfg.alert_policies,
            depends_on=tuple(apis), sip_edge=sip_edge is not None,
            always_running=cfg.dispatcher_min_instances >= 1 and not settings.drain, drained=settings.drain),
            opts=child)

        region_url = self._region_url()
        self.outputs = {
            "cloud": "gcp",
            # Read back by the next `up` (stacks/config/rotation_last_up.py), once the dispatcher took this step.
            "secretsRotation": rotation_last_up.exported(settings.secrets_rotation, dispatcher.service_name),
            "project": cfg.project,
            "region": cfg.region,
            "zone": cfg.zone,
            "dispatcherUrl": dispatcher.url,
            "dispatcherService": dispatcher.service_name,
            "botImage": images.bot,
            "dispatcherImage": images.dispatcher,
            **({"botInstanceTemplate": releases.current} if isinstance(bot, BotTemplate) else
               {"botJob": releases.current.apply(lambda path: path.rsplit("/", 1)[-1]),
                contract.BOT_JOBS_OUTPUT: releases.kept}),
            # The releases the dispatcher offers (RELEASES) and their builds, which the next `up` reads back.
            RELEASES_OUTPUT: releases.document,
            BUILDS_OUTPUT: builds.apply(lambda kept: kept.as_output()),
            "botServiceAccount": bot.service_account_email,
            "dispatcherServiceAccount": account.email,
            "secretIds": secrets.ids,
            "machinesEnvironment": dispatcher.machines_environment,
            "drained": settings.drain,
            "dashboardUrl": observability.dashboard_url,
            "alarmNames": observability.alert_policy_names,
            # Read back by the next `up` (stacks/gcp/log_metrics_last_up.py).
            log_metrics_last_up.OUTPUT: observability.log_metric_names,
            **({"turnUrls": turn_urls} if turn_urls is not None else {}),
            # The trunk's origination URIs (Twilio Elastic SIP Trunking, Telnyx): where its calls come in, UDP and TLS.
            **edge_outputs(sip_edge.public_ip if sip_edge is not None else None, settings.sip_edge),
            **({"botChannelUrl": self._bot_channel_url} if self._bot_channel_url is not None else {}),
            **({"recordingBucket": recordings.name} if recordings is not None else {}),
            # Read back by the next `up` (stacks/shared/recording_last_up.py).
            **({recording_last_up.OUTPUT: recording_last_up.store_output(settings.recording, last_store,
                                                                         recordings.holds)}
               if recordings is not None and settings.recording is not None else {}),
            # Several regions: the URL the other regions and the front door reach this one at.
            **({"regionUrl": region_url} if region_url is not None else {}),
            # A destroy leaves these (Cloud Run holds their addresses for 1-2 h): delete them later.
            **({"retainedNetwork": egress.network_name, "retainedSubnetwork": egress.subnetwork_name}
               if egress is not None else {}),
        }
        self.register_outputs(self.outputs)

    def _service_host(self) -> pulumi.Output[str]:
        """The dispatcher's deterministic Cloud Run host, SERVICE-PROJECTNUMBER.REGION.run.app
        (https://cloud.google.com/run/docs/triggering/https-request#deterministic): known before the
        service exists, so the bot template, which the service's own environment names, can carry it."""
        project = gcp_organizations.get_project_output(project_id=self._cfg.project,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))
        return pulumi.Output.concat(dispatcher_service_name(self._settings.prefix), "-", project.number, ".",
                                    self._cfg.region, ".run.app")

    def _channel_url(self) -> pulumi.Output[str]:
        """wss:// on the dispatcher's deterministic Cloud Run URL."""
        return channel_url(self._service_host())

    def _region_url(self) -> pulumi.Output[str] | None:
        """This region's URL as `regions` lists it, once checked against the service's deterministic
        URL (other regions call it there); None for a single region."""
        regions = self._settings.regions
        if regions is None:
            return None

        def checked(host: str) -> str:
            gcp_check(regions, f"https://{host}")
            return regions.url

        return self._service_host().apply(checked)

    def _longest_bot(self, runtime: str) -> int:
        """How long a bot can still run after its release is dropped: the longest life the dispatcher
        gives a VM (maxRunDuration) or an execution (its timeout). A cold one's is the session and the
        grace; with the channel the reserve's idle bots may first wait RESERVE_MAX_IDLE_SECONDS to be
        claimed (dispatcher/machines/gce/reserve.py `max_run_seconds`, cloudrun/reserve.py `idle_seconds`)."""
        settings = self._settings
        grace = GCE_BOOT_GRACE_SECONDS if runtime == "gce" else BotJobArgs.grace_seconds
        idle = int(settings.reserve.max_idle_seconds) if channel_secrets(settings) and settings.reserve.enabled else 0
        return idle + settings.max_session_seconds + grace + ROLLOUT_MARGIN_SECONDS

    def _job_image_role(self, images: Images) -> str:
        """A job has one container: the SmallWebRTC image with a TURN relay, else the Daily one."""
        return WEBRTC_ROLE if self._settings.turn is not None and images.bot_webrtc is not None else BOT_ROLE

    def _bot_args(self, network: Network, registry: Registry, secrets: SecretStore) -> BotTemplateArgs:
        settings, cfg = self._settings, self._cfg
        return BotTemplateArgs(
            project=cfg.project,
            prefix=settings.prefix,
            account_id=account_id(settings.stack, "bot"),
            subnetwork_id=network.subnetwork_id,
            repository_id=registry.repository.repository_id,
            region=cfg.region,
            zone=cfg.zone,
            instance_prefix=instance_prefix(settings.stack),
            machine_type=cfg.bot_machine_type,
            disk_gb=cfg.bot_disk_gb,
            max_session_seconds=settings.max_session_seconds,
            secrets=secrets,
            # Not the channel's deployment secret: each bot gets its own machine credential at launch.
            secret_names=tuple(sorted({*settings.secrets.bot, *settings.observability.bot_secret_names()})),
            channel_url=self._bot_channel_url,
            environment=bot_plain_environment(settings),
            roles=settings.bot_permissions.gcp_roles,
            cells=gce_cells.listed(cfg.gce_cells, cfg.zone),
        )

    def _job_args(self, network: Network, secrets: SecretStore) -> BotJobArgs:
        """The bot jobs' settings, the same for every release's job."""
        settings, cfg = self._settings, self._cfg
        return BotJobArgs(
            # not the Compute Engine bots' id: a switch of botRuntime creates this before deleting that
            project=cfg.project, prefix=settings.prefix, account_id=account_id(settings.stack, "botjob"),
            subnetwork_id=network.subnetwork_id,
            region=cfg.region, max_session_seconds=settings.max_session_seconds, secrets=secrets,
            secret_names=tuple(sorted({*settings.secrets.bot, *settings.observability.bot_secret_names()})),
            channel_url=self._bot_channel_url, environment=bot_plain_environment(settings),
            roles=settings.bot_permissions.gcp_roles, cells=cloud_run.listed(cfg.cloud_run_cells, cfg.region),
            repository=settings.prefix)

    def _cloud_run_job(self, releases: Releases) -> pulumi.Output[str]:
        """CLOUDRUN_JOB: the current build's job; with cloudRunCells, the oldest listed release's. The
        dispatcher lists that job's executions in every cell and drains a cell lacking it for every start,
        while a cell's copy of a new build's job is made by hand after the `up` that adds it
        (stacks/gcp/cell_jobs.py): the oldest has been in every cell since its own `up`."""
        job = releases.oldest if self._cfg.cloud_run_cells else releases.current
        return job.apply(lambda path: path.rsplit("/", 1)[-1])

    def _instance_template(self, releases: Releases) -> pulumi.Output[str]:
        """GCE_INSTANCE_TEMPLATE: the current build's template; with gceCells, the oldest listed release's. A
        cell lacking the default template is drained for every start that uses it, while a cell's copy of a new
        build's template is made by hand after the `up` that adds it (stacks/gcp/cell_templates.py): the
        oldest has been in every cell since its own `up`."""
        return releases.oldest if self._cfg.gce_cells else releases.current

    def _turn_urls(self, network: Network, secrets: SecretStore,
                   opts: pulumi.ResourceOptions) -> pulumi.Input[list[str]] | None:
        cfg = self._cfg

        def relay(turn: TurnSettings) -> pulumi.Output[list[str]]:
            return TurnRelay(f"{self._name}-turn", TurnRelayArgs(
                turn=turn, project=cfg.project, region=cfg.region, zone=cfg.zone,
                account_id=account_id(self._settings.stack, "turn"), network_id=network.network_id,
                subnetwork_id=network.subnetwork_id, secrets=secrets,
                secret_names=relay_secret_names(self._settings)), opts=opts).urls

        return turn_urls(self._settings.turn, relay)

    def _store(self, network: EgressNetwork, member: pulumi.Output[str], apis: list[gcp_projects.Service],
               opts: pulumi.ResourceOptions) -> CoordinationStore:
        """Several instances share Memorystore (docs/replicas.md): a node and a replica in prod, its
        endpoints in the dispatcher's egress network."""
        prod = self._settings.environment == "prod"
        return CoordinationStore(f"{self._name}-store", CoordinationStoreArgs(
            instance_id=f"{self._settings.prefix}-kv", region=self._cfg.region, project=self._cfg.project,
            network_id=network.network_id, subnetwork_id=network.subnetwork_id, dispatcher_member=member,
            node_type=self._cfg.store_node_type, replicas=1 if prod else 0,
            protect=self._settings.protect, depends_on=tuple(apis)), opts=opts)

    def _dispatcher_grants(self, bot: BotTemplate | BotJob, launch: list[pulumi.Resource], secrets: SecretStore,
                           member: pulumi.Output[str], names: tuple[str, ...]) -> tuple[pulumi.Resource, ...]:
        """What the dispatcher's identity may do (`launch`: bot VMs or the bot jobs' runs; read `names`,
        its service's secrets), and what it waits for besides: the secret versions and the bots' own grants."""
        readable = secrets.grant_access("dispatcher", member, names)
        return (*readable, *(secrets.versions[env] for env in names), *launch, *bot.grants)

    def _dispatcher_args(self, image: pulumi.Output[str], account_email: pulumi.Output[str], bot: BotTemplate | BotJob,
                         releases: Releases, secrets: SecretStore, turn_urls: pulumi.Input[list[str]] | None,
                         egress: EgressNetwork | None, store: CoordinationStore | None) -> DispatcherArgs:
        settings, cfg = self._settings, self._cfg
        return DispatcherArgs(
            service_name=dispatcher_service_name(settings.prefix),
            region=cfg.region,
            image=image,
            service_account_email=account_email,
            instance_template=self._instance_template(releases) if isinstance(bot, BotTemplate) else "",
            releases=releases.document,
            cloudrun=None if isinstance(bot, BotTemplate) else {
                "CLOUDRUN_PROJECT": cfg.project, "CLOUDRUN_REGION": cfg.region,
                "CLOUDRUN_JOB": self._cloud_run_job(releases),
                "CLOUDRUN_BOT_SERVICE_ACCOUNT_ID": bot.service_account_unique_id},
            instance_prefix=instance_prefix(settings.stack),
            secrets=secrets,
            # Cloud Run fails a revision whose identity cannot yet read its secrets, and the dispatcher
            # launches reserve VMs at once: it waits for every grant it and the VMs need (added in
            # __init__ once the grants exist).
            depends_on=(store.grant,) if store is not None else (),
            key_settings=plain_environment(settings),
            secret_names=dispatcher_secret_names(settings, self._stored),
            metric_lines=metric_environment(settings.metric_namespace),
            turn_urls=turn_urls,
            turn_transports=web_transports(settings),
            channel_url=self._bot_channel_url,
            # A bot's channel is one request to Cloud Run: it must outlive an idle bot plus its session.
            request_timeout_seconds=channel_lifetime_seconds(settings) if self._bot_channel_url is not None
            else DispatcherArgs.request_timeout_seconds,
            request_concurrency=cloud_run_concurrency(settings, cfg.dispatcher_min_instances),
            memory_mib=settings.dispatcher_memory,
            min_instances=cfg.dispatcher_min_instances,
            max_instances=cfg.dispatcher_max_instances,
            store_url=store.url if store is not None else None,
            observability=settings.observability,
            regions=settings.regions is not None,
            store_ca=store.ca_certificate if store is not None else None,
            network_id=egress.network_id if egress is not None else None,
            subnetwork_id=egress.subnetwork_id if egress is not None else None,
            deletion_protection=settings.protect,
            drain=settings.drain,
        )
