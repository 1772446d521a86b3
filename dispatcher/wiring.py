"""The dispatcher's object graph, built once from settings, in dependency order: the store, the
machines provider, rooms and ICE, the bots' channel, the reserve, sessions, phone calls; and its
lifespan (what runs in the background while the app serves, and what is closed after).

Tests pass `machines`, `rooms` and `ice_servers` pointed at local servers; everything else comes
from the environment, as `python -m dispatcher` builds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from dispatcher.api import runtime_entries
from dispatcher.api.auth import Authenticator
from dispatcher.api.dashboard_setting import dashboard_enabled
from dispatcher.api.key_limits import PerKeyLimit
from dispatcher.api.replication import Replication
from dispatcher.api.runtime_capacity import Floors
from dispatcher.api.runtime_capacity import apply as apply_runtime
from dispatcher.api.runtime_floors import Keeping
from dispatcher.api.runtime_keys import RuntimeKeys
from dispatcher.api.runtime_settings import RuntimeSettings
from dispatcher.api.settings_key_ids import revoked_ids
from dispatcher.api.state import AppState
from dispatcher.api.status_view import StatusView
from dispatcher.api.stream_slots import StreamSlots
from dispatcher.api.usage_days import BURST_DAYS, DAYS_PER_MINUTE, USAGE_DAYS, UsageDays
from dispatcher.artifacts.building import build_artifacts
from dispatcher.artifacts.names_secret import kept_names_secret
from dispatcher.campaigns.settings import CampaignSettings
from dispatcher.campaigns.worker import CampaignWorker
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import OneUse
from dispatcher.factory import build_coordination, build_machines, build_rooms, build_turn
from dispatcher.machines.base import Machines, ReportsEnds, SettlesAtStart
from dispatcher.machines.chore_turn import ChoreTurn
from dispatcher.media.ice import IceServers, StaticIceServers, parse_ice_servers
from dispatcher.media.rooms import Rooms
from dispatcher.media.turn import TurnCredentials, TurnIceServers
from dispatcher.media.turn_quota import TurnQuota
from dispatcher.models.admission import ModelServiceAdmission
from dispatcher.models.capacity import ModelServiceCapacity
from dispatcher.models.settings import ModelServiceSettings
from dispatcher.observability.metric_lines import MetricLines, MetricLineSettings
from dispatcher.observability.metrics import Metrics
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.own_paces import own_rates
from dispatcher.phone.relayed_starts import RelayedStarts
from dispatcher.phone.sip_edge_gauges import SipEdgeGauges
from dispatcher.phone.sip_edge_status import SipEdgeStatus
from dispatcher.phone.sip_edges import HOLD_MARGIN
from dispatcher.phone.spilled_transfers import SpilledTransfers
from dispatcher.phone.state import build_phone_state
from dispatcher.phone.trunk_calls import TrunkCalls, TrunkCallSettings
from dispatcher.regions.budget_use import PeerBudgetUse
from dispatcher.regions.calls import CallHandoffs
from dispatcher.regions.capacity import neighbours_of
from dispatcher.regions.config import Regions
from dispatcher.regions.home import KeyHomes
from dispatcher.regions.pace_homes import RegionPaces
from dispatcher.regions.peers import Peers
from dispatcher.regions.relay import RegionRelay
from dispatcher.regions.releases import RegionalReleases
from dispatcher.regions.runtime import RegionalRuntime
from dispatcher.regions.sightings import WebhookSightings
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.eval_gate import eval_required
from dispatcher.releases.health import ReleaseHealth
from dispatcher.releases.health_settings import health_rule, rollback_on
from dispatcher.releases.key_defaults import key_defaults
from dispatcher.releases.live import LiveReleases
from dispatcher.reserve.factory import build_pool_sizing, build_reserve
from dispatcher.reserve.policy import ReserveSettings, cold_start_sigma
from dispatcher.reserve.pool_sizing import follow_releases as follow_pool_releases
from dispatcher.reserve.prices import bot_price
from dispatcher.reserve.releases import follow as follow_releases
from dispatcher.sessions.budget_usage import LedgerUsage
from dispatcher.sessions.cost import SessionCosts
from dispatcher.sessions.cost_count import CostCount
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.machine_end_grace import MachineEndGrace
from dispatcher.sessions.machine_ends import MachineEnds
from dispatcher.sessions.ready_estimate import ReadyEstimate, none_claimable
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.sessions.release_watch import ReleaseWatch
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.smoke_watch import SmokeWatch, smoke_deadline
from dispatcher.sessions.start_reserve import start_reserve
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.sessions.webhook_outbox import webhook_outbox
from dispatcher.sessions.webhooks import LifecycleWebhooks, WebhookSettings
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.budget_ledger import budget_ledger
from dispatcher.store.campaign_records import campaign_book
from dispatcher.store.client import Store
from dispatcher.store.coordination import Coordination
from dispatcher.store.handed_over_ends import handed_over_ends
from dispatcher.store.live_sessions import StoreLiveSessions
from dispatcher.store.memory import LocalRate
from dispatcher.usage.build import build_usage
from dispatcher.usage.files_build import build_usage_files
from dispatcher.usage.price_table import load_prices
from dispatcher.usage.relay_price import relay_price
from dispatcher.whatsapp.calls import WhatsAppCalls
from dispatcher.whatsapp.elsewhere import RegionsElsewhere
from dispatcher.whatsapp.settings import WhatsAppSettings
from voicefleet_settings.read import setting_text

OWED_LAST_PASS_SECONDS = 2.0  # a stop's last try at the SIP edge records owed: a drain's budget is not spent on it
FROM_ENV = object()  # "build it from the environment", as opposed to an explicit None (no rooms)


def build_state(
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    machines: Machines | None = None,
    rooms: Rooms | None | object = FROM_ENV,
    ice_servers: IceServers | None = None,
) -> AppState:
    env = os.environ if env is None else env
    # REGION is read once, with REGIONS and REGION_SECRET: the settings' region is the one the peers
    # know this dispatcher by, whatever settings were passed in.
    regions = Regions.from_env(env)
    if regions.accepted:  # a change of secret left half done keeps the old (often the leaked) secret valid
        logging.getLogger("dispatcher.regions").warning(
            "REGION_ACCEPTED_SECRET is set: requests signed with it are still taken; remove it once every "
            "region signs with REGION_SECRET (docs/regions.md, changing the regions' secret)")
    settings = replace(settings or Settings.from_env(env), region=regions.here)
    coordination = build_coordination(env)  # one process, or several replicas with REDIS_URL (docs/replicas.md)
    machines = machines or build_machines(settings, env, coordination)
    resolved_rooms = build_rooms(settings, env) if rooms is FROM_ENV else rooms
    assert resolved_rooms is None or isinstance(resolved_rooms, Rooms)
    metrics = Metrics(machines.name)
    for collector in coordination.collectors():
        metrics.registry.register(collector)
    turn = build_turn(settings, env)
    static_ice = parse_ice_servers(setting_text(env, "ICE_SERVERS"))
    if ice_servers is None:
        ice_servers = TurnIceServers(turn, static_ice) if turn is not None else StaticIceServers(static_ice)
    channel_access = _channel_access(settings)
    channels = BotChannels(channel_access.credentials if channel_access else None, claims=coordination.claims,
                           identity=OneUse(machines.identity, coordination.identity_proofs),
                           max_connections=settings.bot_channel_max_connections,
                           max_identity_only=settings.bot_channel_max_identity_only,
                           identity_only_per_address=settings.bot_channel_identity_only_per_address)
    replication = Replication(coordination, channels, machines)
    reserve = build_reserve(env, settings.machines, machines, channels, metrics, coordination=coordination,
                            max_session_seconds=settings.max_session_seconds)
    replication.attach_reserve(reserve)
    pool_sizing = build_pool_sizing(env, settings.machines, machines, channels, metrics, coordination)
    if channel_access is not None:
        machines.attach_channel(channel_access)  # local bots are told where to dial, and with which credential
    if (watch := getattr(machines, "watch_channels", None)) is not None:
        watch(channels)  # a provider that knows its machines only through their channel (Cerebrium)
    timeline = SessionTimeline(coordination.timelines, coordination.replica_id)
    timeline.follow(channels)
    # The reserve's price table for machines, the services' own for what the bots' services used (docs/operations.md).
    costs = SessionCosts(machines.name, bot_price(machines, env), prices=load_prices(env),
                         relay=relay_price(env, machines.name))
    # A machine's end waits its grace for the bot's report; a closing replica hands it to the store (docs/replicas.md).
    grace = MachineEndGrace(timeline.read_shared, handed_over_ends(coordination),
                            restore=timeline.restore)  # a store blip: kept, retried
    timeline.closers.append(grace.aclose)  # before its finalisers' own closes
    webhook_settings = WebhookSettings.from_env(env)
    webhooks = (LifecycleWebhooks(webhook_settings, timeline.read, webhook_outbox(coordination), costs=costs,
                                  once=coordination.spent)
                if webhook_settings is not None else None)
    if webhooks is not None:
        timeline.listeners.append(webhooks.timeline_event)
        timeline.closers.append(webhooks.aclose)
        grace.finalisers.append(webhooks.machine_ended)
    cost_count = CostCount(costs, timeline, metrics)  # each ended session's cost, in /metrics
    timeline.listeners.append(cost_count.timeline_event)
    timeline.closers.append(cost_count.aclose)
    usage = build_usage(env, coordination, costs, timeline, metrics, coordination.session_index.entry,  # GET /usage
                        coordination.session_index.noted, channels)
    grace.finalisers.append(usage.machine_ended)
    timeline.listeners.append(grace.timeline_event)
    # The deployment's secret, the same at every replica and region: it binds key names' sessions and keys the draw.
    deployment_secret = regions.secret or (settings.bot_channel_token or "").encode() or (
        kept_names_secret(env) if settings.machines == "local" and settings.api_key_hashes else None)
    auth = Authenticator(settings.api_key_hashes, settings.bot_channel_token, settings.admin_key_hashes,
                         names=dict(settings.api_key_names), owner_secret=deployment_secret)
    reserve_settings = ReserveSettings.from_env(env, settings.machines)
    defaults = key_defaults(env, settings.api_key_hashes, auth.caller_of_hash, auth.names)
    releases = LiveReleases(Catalogue.from_env(env, local=not settings.cloud), coordination.releases,
                            region=regions.here, key_defaults=defaults, draw_secret=deployment_secret)
    if settings.machines == "local":  # a release's own Python (BOT_RELEASES' `@python`), for its reserve bots too
        from dispatcher.machines.local.provider import LocalMachines
        if isinstance(machines, LocalMachines):
            machines.release_envs = {release.name: release.env for release in releases.catalogue.releases}
    if reserve is not None:
        reserve.releases.transport = settings.transports[0]  # what its idle bots serve
        follow_releases(reserve.releases, releases, reserve.wake)
    if pool_sizing is not None:
        follow_pool_releases(pool_sizing, releases)  # a pool per release, sized from its share
    sessions: SessionService  # built below: the recordings' report reads its machine ends
    artifacts = build_artifacts(env, channels=channels, note=timeline.note, events=timeline.read, region=regions.here,
                                provider=machines.name, running=functools.partial(_running, machines),
                                max_session_seconds=settings.max_session_seconds,
                                cost=functools.partial(_reckoned, costs, machines, timeline,
                                                       lambda: sessions.ends),
                                key_names={name for _, name in settings.api_key_names},
                                runtime_keys=bool(settings.api_key_hashes and settings.admin_key_hashes),
                                releases=set(releases.catalogue.names), replica_id=coordination.replica_id,
                                ask=coordination.ask_replica, ask_owner=coordination.ask_owner)
    replication.attach_recordings(artifacts.recordings)
    sessions = SessionService(
        settings, machines, resolved_rooms, metrics,
        launch=reserve.launch if reserve is not None else pool_sizing.launch if pool_sizing is not None else None,
        turn=turn, coordination=coordination,
        channels=channels, timeline=timeline,
        claim=functools.partial(reserve.launch, warm_only=True) if reserve is not None else None,
        claimable=reserve.can_claim if reserve is not None else none_claimable,  # a pool's claim may go cold
        ready=ReadyEstimate.of(reserve, reserve_settings.cold_start_seconds, cold_start_sigma(settings.machines)),
        reserve_max_idle=reserve_settings.max_idle if reserve is not None else 0,
        releases=releases,
        costs=costs,
    )
    model_service = ModelServiceSettings.from_env(env)  # MODEL_SERVICE_URL: every bot streams to it
    if model_service is not None:
        sessions.model_service = ModelServiceAdmission(ModelServiceCapacity(model_service), coordination.key_sessions)
    if isinstance(machines, ReportsEnds):  # a machine that dies before its bot reports: told at once
        machines.end_listeners.append(sessions.ends.observed)
    sessions.recordings = artifacts.recordings
    # Each key's budgets: its usage counted in the deployment's ledger, read once a second.
    machine_price = costs.price.dollars_per_second if costs.price is not None else None
    budget_usage = LedgerUsage(budget_ledger(coordination), sessions.budgets, machine_price,
                               webhooks.push if webhooks is not None else None,
                               start_reserve=start_reserve(env, costs.prices, machine_price))
    timeline.listeners.append(budget_usage.timeline_event)
    usage.spent = budget_usage.services_spent  # a session's services count in its key's spend too
    # Automatic rollback: every session's outcome judged for its release (docs/releases.md).
    sample = SharedSample(ReleaseHealth(health_rule(env)), coordination.release_samples)  # the deployment's
    watch = ReleaseWatch(sessions.releases, sample, timeline.read, webhooks.push if webhooks is not None else None,
                         act=rollback_on(env), cold_start=sessions.ready.before_launch)
    timeline.listeners.append(watch.timeline_event)
    smoke = SmokeWatch(sessions.releases, timeline.read, webhooks.push if webhooks is not None else None,
                       deadline_seconds=smoke_deadline(env))
    timeline.listeners.append(smoke.timeline_event)
    peers = Peers(regions)
    region_relay = RegionRelay(regions, connections=settings.session_waits + 200)  # requests for their sessions
    if regions.several:  # a key's budgets hold for the deployment: the peers' use added at each check
        budget_usage.other_regions = PeerBudgetUse(peers)
    if reserve is not None and regions.several:  # its planner leans on busier neighbours' spare bots
        reserve.planning.region = regions.here
        reserve.planning.neighbours = functools.partial(neighbours_of, peers)

    runtime = RuntimeSettings(coordination.runtime, RuntimeKeys(), region=regions.here, keeping=Keeping.from_env(env))
    auth.runtime = runtime.keys
    auth.used = runtime.touched
    auth.used_secret = runtime.touched_secret
    floors = Floors(sessions=settings.max_concurrent_sessions, key_share=settings.key_session_share,
                    reserve=reserve.settings if reserve is not None and reserve.settings.enabled else None,
                    provider=settings.machines)

    def apply_capacity(record: Mapping[str, Any]) -> None:
        callers = settings.api_callers + len(runtime.keys.names() - auth.settings_names)
        apply_runtime(record["capacity"], floors, sessions, reserve, lambda name: auth.named(name).id, callers)

    runtime.listeners.append(apply_capacity)
    # Keys of DISPATCHER_API_KEYS revoked at runtime: refused from the record's next read on.
    runtime.listeners.append(lambda record: setattr(auth, "revoked_settings", revoked_ids(record["entries"])))

    def store_up() -> bool | None:  # what /healthz says of the store; none for one process
        health = coordination.health()
        return health["status"] == "ok" if "status" in health else None

    paces = RegionPaces(peers, coordination) if regions.several else None  # calls out paced across the regions
    phone = build_phone_state(env, settings, sessions, channels, metrics, coordination, replication.remote,
                              owners=auth.by_id, timeline=timeline, regions=regions, paces=paces,
                              rooms=resolved_rooms, reads=sessions, peers=peers)
    replication.attach_transfers(phone.handing)  # a transfer another replica relays here
    trunk_calls = _trunk_calls(env, paces or coordination, coordination, settings.max_session_seconds,
                               phone.settings.transfer_time_limit, metrics.registry)
    relayed_starts = RelayedStarts(coordination.key_holders, settings.max_session_seconds
                                   + phone.settings.transfer_time_limit + HOLD_MARGIN,
                                   metrics.registry) if regions.several else None
    if relayed_starts is not None:  # a call spilled here from another region's edge is handed over through it
        phone.transfers.spilled = SpilledTransfers(relayed_starts, peers, coordination.key_holders)
    if paces is not None:  # as a pace's home, its own settings bound what another region asks
        paces.own_rate = own_rates(phone.dialers, trunk_calls)
    # The edges' clients are the calls' (closed with them): the status asks with its own shorter timeout.
    sip_edge_status = SipEdgeStatus(trunk_calls.edges, SipEdgeGauges(metrics.registry)) \
        if trunk_calls is not None else None

    async def refresh_gauges() -> None:
        # The edges' gauges on the metric lines' own schedule, for the stacks' alarms (within the status's few
        # seconds of cache, so no edge is asked more often); its read never raises: an edge down is shown so.
        if sip_edge_status is not None:
            await sip_edge_status.read()
        metrics.set_active(*await sessions.active_by_release())

    return AppState(
        settings=settings,
        machines=machines,
        rooms=resolved_rooms,
        sessions=sessions,
        metrics=metrics,
        auth=auth,
        channels=channels,
        reserve=reserve,
        pool_sizing=pool_sizing,
        remote=replication.remote,
        replication=replication,
        waits=StreamSlots(settings.session_waits, settings.session_waits_per_key),
        usage=usage,
        machine_end_grace=grace,
        usage_files=build_usage_files(env, usage.rollups, coordination, artifacts.recordings.store,
                                      region=regions.here if regions.several else ""),
        metric_lines=MetricLines(metrics.registry, machines.name, MetricLineSettings.from_env(env),
                                 refresh=refresh_gauges, store_up=store_up),
        channel_access=channel_access,
        start_limit=PerKeyLimit(coordination.start_rate(settings.start_rate_per_key, settings.start_burst_per_key)),
        usage_days=UsageDays(coordination.weighted_rate(USAGE_DAYS, DAYS_PER_MINUTE / 60, BURST_DAYS)),
        read_limit=PerKeyLimit(LocalRate(settings.read_rate_per_key, settings.read_burst_per_key), calls="session"),
        reaper=Reaper(
            machines,
            resolved_rooms,
            metrics,
            max_session_seconds=settings.max_session_seconds,
            settings=ReaperSettings(
                interval_seconds=settings.reaper_interval_seconds, grace_seconds=settings.reaper_grace_seconds
            ),
            ended=sessions.ends.observed,
            turn=ChoreTurn(coordination.turns, machines, "reaper"),
        ),
        ice_servers=ice_servers,
        turn_quota=_turn_quota(turn, coordination),
        phone=phone,
        peers=peers,  # one region unless REGION, REGIONS and REGION_SECRET are set
        region_relay=region_relay,
        key_homes=KeyHomes(peers, coordination.key_holders) if regions.several else None,
        relayed_starts=relayed_starts,
        call_handoffs=CallHandoffs(peers) if regions.several else None,
        webhook_sightings=WebhookSightings(peers) if regions.several else None,
        region_paces=paces,
        release_health=watch.view,
        release_watch=watch,
        smoke=smoke,
        eval_required=eval_required(env),
        session_audit=coordination.session_audit,
        region_releases=RegionalReleases(peers, sessions.releases),
        # Built before the first poll (the start-up's read of every peer): its listener reads theirs.
        region_runtime=RegionalRuntime(peers, runtime, runtime_entries.checked) if regions.several else None,
        status=StatusView(machines=machines, reserve=reserve, coordination=coordination, peers=peers,
                          activity=metrics.activity, region=regions.here, price=costs.price,
                          evals=sessions.listing.active_evals, live=_live_sessions(coordination)),
        dashboard=dashboard_enabled(env, local=not settings.cloud),
        artifacts=artifacts,
        runtime=runtime,
        capacity_floors=floors,
        model_service=sessions.model_service,
        trunk_calls=trunk_calls,
        sip_edge_status=sip_edge_status,
        sip_edge=EdgeSecret.from_env(env),
        campaigns=campaign_book(coordination),
        campaign_settings=CampaignSettings.from_env(env),
        push_webhook=webhooks.push if webhooks is not None else None,
        whatsapp=_whatsapp(env, settings, sessions, channels, replication, coordination, auth,
                           RegionsElsewhere(peers) if regions.several else None),
    )


@asynccontextmanager
async def running(state: AppState) -> AsyncIterator[None]:
    """The app's lifespan: the replica joins its group, the provider settles (`SettlesAtStart`), the reaper
    and the reserve run; on the way
    out the replica drains, they stop, and everything is closed (local mode: every bot stopped)."""
    await state.replication.start()  # an unreachable store is only noted: it may come back
    if state.artifacts is not None:
        await state.artifacts.start()  # a recordings store it cannot write: said now, in the log and in status
    if state.region_releases is not None:  # a restarted replica serves the stored traffic, not the configured one
        await state.region_releases.catch_up()
    reaping = asyncio.create_task(state.reaper.run()) if state.settings.reaper_interval_seconds > 0 else None
    settling = asyncio.create_task(state.machines.settle(), name="settle") \
        if isinstance(state.machines, SettlesAtStart) else None  # once, while the app serves
    refilling = asyncio.create_task(state.reserve.run(), name="reserve") if state.reserve is not None else None
    pool_sizing = state.pool_sizing
    sizing = asyncio.create_task(pool_sizing.run(), name="pool-sizing") if pool_sizing is not None else None
    writing = asyncio.create_task(state.metric_lines.run(), name="metric-lines")  # returns at once when off
    polling = asyncio.create_task(state.peers.run(), name="regions")  # returns at once with one region
    reading = asyncio.create_task(state.releases.run(), name="releases")  # the traffic, read once a second
    # Canaries judged on the sample read back, then once a second on every replica's sessions.
    judging = asyncio.create_task(state.release_watch.run(), name="release-watch") \
        if state.release_watch is not None else None
    if state.runtime is not None:  # capacity and keys as an admin last changed them, before serving
        await state.runtime.catch_up()
    # …and at every other replica's nudge, once a second anyway.
    following = asyncio.create_task(state.runtime.run(), name="runtime") if state.runtime is not None else None
    follow = state.sessions.budgets.follow
    budgeting = asyncio.create_task(follow(), name="budgets") if follow is not None else None
    # The charts' sessions and idle bots, sampled (GET /status/history).
    sampling = asyncio.create_task(state.status.run(), name="status") if state.status is not None else None
    # The shared model service's free streams, read on a timer (MODEL_SERVICE_READ_SECONDS).
    model_reading = asyncio.create_task(state.model_service.capacity.run(), name="model-service") \
        if state.model_service is not None else None
    # The daily usage files, today's and yesterday's rewritten from the rollups (USAGE_FILES).
    filing = asyncio.create_task(state.usage_files.run(), name="usage-files") \
        if state.usage_files is not None else None
    # Machine ends a closing replica handed over in their grace, finalised by any replica (one process: returns).
    grace = state.machine_end_grace
    sweeping = asyncio.create_task(grace.run(), name="machine-end-grace") if grace is not None else None
    # WhatsApp hang-ups Meta never answered, sent again from any replica.
    reconciling = asyncio.create_task(state.whatsapp.reconcile(), name="whatsapp-hang-ups") \
        if state.whatsapp is not None else None
    # SIP edge records owed (calls started while the store did not answer), written once it does; and a relayed
    # call's record of the region that relayed it, likewise.
    owed = ([(state.trunk_calls.edges.owed, "sip-edge-records-owed")] if state.trunk_calls is not None else []) \
        + ([(state.relayed_starts.owed, "relayed-start-records-owed")] if state.relayed_starts is not None else [])
    owing = [asyncio.create_task(records.run(), name=name) for records, name in owed]
    # Every live campaign's rows, claimed and called from every replica (dispatcher/campaigns/worker.py).
    campaigning = asyncio.create_task(CampaignWorker(state, state.campaigns,
                                                     lease_seconds=state.campaign_settings.lease_seconds).run(),
                                      name="campaigns")
    try:
        yield
    finally:
        await state.replication.drain()
        campaigning.cancel()  # its rows' leases run out and another replica follows their calls
        with contextlib.suppress(asyncio.CancelledError):
            await campaigning
        if pool_sizing is not None and sizing is not None:
            sizing.cancel()
            await pool_sizing.drain()  # the planning lease goes to another replica at once
        if reaping is not None:
            reaping.cancel()
        if settling is not None:
            settling.cancel()
        if refilling is not None:
            refilling.cancel()
        writing.cancel()
        polling.cancel()
        reading.cancel()
        if judging is not None:
            judging.cancel()
        if following is not None:
            following.cancel()
        if sampling is not None:
            sampling.cancel()
        if budgeting is not None:
            budgeting.cancel()
        if model_reading is not None:
            model_reading.cancel()
        if reconciling is not None:
            reconciling.cancel()
        if sweeping is not None:
            sweeping.cancel()
        for task, (records, _) in zip(owing, owed, strict=True):  # what is still owed is lost with this replica
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await records.last_pass(OWED_LAST_PASS_SECONDS)
        if filing is not None and state.usage_files is not None:
            filing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await filing
            await state.usage_files.aclose()
        await state.aclose()  # local mode: every bot is stopped before the dispatcher exits


async def _running(machines: Machines, session_id: str) -> bool:
    """Whether the session's machine is still running, as its provider says."""
    machine = await machines.status(session_id)
    return machine is not None and machine.state.is_active


async def _reckoned(costs: SessionCosts, machines: Machines, timeline: SessionTimeline,
                    ends: Callable[[], MachineEnds], session_id: str,
                    events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An ended session's cost for its recording's report, as `GET /sessions/{id}` gives it: a bot
    killed before its end has its services as it last reported them, marked so, and its machine
    until its end as the dispatcher records it once (`machine_ended`, written first if need be), so
    the report's cost is the one every other view reads."""
    if not any(e.get("event") in ("ended", "machine_ended") for e in events):
        ends().observed(await machines.status(session_id))
        await ends().settled()
        await timeline.settled()
        events = await timeline.read(session_id)
    cost = await costs.of_session(session_id, events, running=False)
    if cost is None:
        return None
    if not any(e.get("event") in ("ended", "machine_ended") for e in events):  # its machine still runs
        return {**cost.as_json(), "provisional": "its machine was still running when this report was written: "
                "GET /sessions/{id} gives its cost once the machine has ended"}
    return cost.as_json()


def _channel_access(settings: Settings) -> ChannelAccess | None:
    """The bot credential: configured, or (local mode only) generated for this run."""
    if settings.bot_channel_token:
        return ChannelAccess(BotCredentials(settings.bot_channel_token))
    return ChannelAccess.generated() if settings.machines == "local" else None


def _turn_quota(turn: TurnCredentials | None, coordination: Coordination) -> TurnQuota | None:
    # A client's TURN credential cannot be taken back: each key holds a bounded number.
    if turn is None:
        return None
    return TurnQuota(turn.settings.credentials_per_key, turn.settings.ttl_seconds, coordination.turn_credentials())


def _live_sessions(coordination: Coordination) -> StoreLiveSessions | None:
    """Where each replica publishes its own running sessions: the store, with several replicas."""
    store = getattr(coordination, "store", None)
    return StoreLiveSessions(store) if isinstance(store, Store) else None


def _trunk_calls(env: Mapping[str, str], paces: Coordination | RegionPaces, coordination: Coordination,
                 max_session_seconds: int, transfer_seconds: int,
                 registry: CollectorRegistry) -> TrunkCalls | None:
    """`POST /calls` through the SIP edge, when SIP_EDGE_URL names one (docs/sip.md#outbound-calls): each call's
    edge recorded in the store, for its retries and transfers at any replica."""
    settings = TrunkCallSettings.from_env(env)
    return (TrunkCalls(settings, paces, coordination.key_holders, max_session_seconds=max_session_seconds,
                       transfer_seconds=transfer_seconds, registry=registry) if settings is not None else None)


def _whatsapp(env: Mapping[str, str], settings: Settings, sessions: SessionService, channels: BotChannels,
              replication: Replication, coordination: Coordination, auth: Authenticator,
              elsewhere: RegionsElsewhere | None) -> WhatsAppCalls | None:
    """WhatsApp Business calls, when WHATSAPP_NUMBERS and its credentials are set (docs/phone.md)."""
    whatsapp = WhatsAppSettings.from_env(env, keyed=auth.enabled)
    if whatsapp is None:
        return None

    unknown = sorted({r.key for r in whatsapp.numbers.values() if r.key is not None} - auth.settings_names)
    if auth.enabled and unknown:  # a typo would own calls no key holds: no budget, sessions no tenant sees
        raise SettingsError(f"WHATSAPP_NUMBERS names {', '.join(unknown)}, which no key of DISPATCHER_API_KEYS is "
                            "named: name a configured key (runtime keys cannot own a number: docs/phone.md)")

    def caller_for(key: str | None) -> Caller:  # a number's key by name; keyless: the one local caller
        return auth.named(key) if key is not None else auth.identify(None)

    def live_key(key: str | None) -> bool:  # revoked at runtime since the boot: the number's calls are rejected
        return key is None or not auth.enabled or auth.live_name(key)

    # A call's end is decided once across replicas, forgiven while the store is out (a second terminate
    # is refused by Meta, which changes nothing; none at all would leave the caller on an open line).
    return WhatsAppCalls(whatsapp, sessions, channels, replication.remote, coordination.webhooks, caller_for,
                         live_key=live_key, start_wait_seconds=settings.start_wait_seconds,
                         book=coordination.whatsapp_calls, ends=coordination.spent, elsewhere=elsewhere)
