"""The app's one state object: everything the routes reach, built once per app by
dispatcher/wiring.py and reached through `app_state` (dispatcher/api/dependencies.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dispatcher.api.auth import Authenticator
from dispatcher.api.key_limits import PerKeyLimit
from dispatcher.api.replication import Replication
from dispatcher.api.runtime_capacity import Floors
from dispatcher.api.runtime_settings import RuntimeSettings
from dispatcher.api.status_view import StatusView
from dispatcher.api.stream_slots import StreamSlots
from dispatcher.api.usage_answers import RecentAnswers
from dispatcher.api.usage_days import UsageDays
from dispatcher.api.usage_queries import UsageQuerySlots
from dispatcher.artifacts.building import Artifacts
from dispatcher.campaigns.settings import CampaignSettings
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.remote import StoreRemote
from dispatcher.machines.base import Machines
from dispatcher.media.ice import IceServers
from dispatcher.media.rooms import Rooms
from dispatcher.media.turn_quota import TurnQuota
from dispatcher.models.admission import ModelServiceAdmission
from dispatcher.observability.metric_lines import MetricLines
from dispatcher.observability.metrics import Metrics
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.relayed_starts import RelayedStarts
from dispatcher.phone.sip_edge_status import SipEdgeStatus
from dispatcher.phone.state import PhoneState
from dispatcher.phone.trunk_calls import TrunkCalls
from dispatcher.regions.calls import CallHandoffs
from dispatcher.regions.config import Regions
from dispatcher.regions.home import KeyHomes
from dispatcher.regions.pace_homes import RegionPaces
from dispatcher.regions.peers import Peers
from dispatcher.regions.relay import RegionRelay
from dispatcher.regions.releases import RegionalReleases
from dispatcher.regions.runtime import RegionalRuntime
from dispatcher.regions.sightings import WebhookSightings
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic
from dispatcher.reserve.pool_sizing import PoolSizing
from dispatcher.reserve.reserve import Reserve
from dispatcher.sessions.machine_end_grace import MachineEndGrace
from dispatcher.sessions.reaper import Reaper
from dispatcher.sessions.release_watch import ReleaseWatch
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.smoke_watch import SmokeWatch
from dispatcher.settings import Settings
from dispatcher.store.audit_trail import MemoryTrail
from dispatcher.store.campaign_book import CampaignBook, MemoryCampaignBook
from dispatcher.store.coordination import AuditTrail
from dispatcher.usage.daily_files import UsageFiles
from dispatcher.usage.usage_count import UsageCount
from dispatcher.whatsapp.calls import WhatsAppCalls


@dataclass(frozen=True)
class AppState:
    settings: Settings
    machines: Machines
    rooms: Rooms | None
    sessions: SessionService
    metrics: Metrics
    auth: Authenticator
    channels: BotChannels
    start_limit: PerKeyLimit
    read_limit: PerKeyLimit  # GET and DELETE of a session, and its signalling
    reaper: Reaper
    ice_servers: IceServers
    phone: PhoneState  # phone calls: carriers' tokens, the calls in flight, the drain that waits for them
    remote: StoreRemote  # another replica holding a session's bot (one process: none)
    replication: Replication  # this replica's part among the replicas (one process: a group of one)
    waits: StreamSlots  # connections waiting on a session: its event stream, a long-poll
    metric_lines: MetricLines  # the registry as log lines for the cloud's metrics (METRIC_LINES; off: idle)
    channel_access: ChannelAccess | None = None  # how local bots reach the channel
    reserve: Reserve | None = None  # the warm reserve, when the provider and the settings allow one
    pool_sizing: PoolSizing | None = None  # or the size of the pool a platform keeps warm (agent-sandbox)
    turn_quota: TurnQuota | None = None  # TURN credentials each key holds (with TURN_URLS)
    peers: Peers = field(default_factory=lambda: Peers(Regions()))  # the other regions (one region: none)
    region_relay: RegionRelay = field(default_factory=lambda: RegionRelay(Regions()))  # requests for their sessions
    key_homes: KeyHomes | None = None  # where an Idempotency-Key's session is held (several regions)
    relayed_starts: RelayedStarts | None = None  # which region relayed each call's start here (several regions)
    call_handoffs: CallHandoffs | None = None  # a carrier's call handed to another region (several regions)
    webhook_sightings: WebhookSightings | None = None  # a webhook answered once in every region (several)
    region_paces: RegionPaces | None = None  # calls out paced across the regions, each pace at its home (several)
    region_releases: RegionalReleases | None = None  # the releases' traffic read before serving, sent to peers
    region_runtime: RegionalRuntime | None = None  # the runtime settings sent to peers, read from them
    # How each release does for its callers, as `GET /releases` shows it (None: not judged).
    release_health: Callable[[str, Traffic], Awaitable[dict[str, Any]]] | None = None
    release_watch: ReleaseWatch | None = None  # the automatic rollback's judge, run while the app serves
    status: StatusView | None = None  # GET /status (None: a graph built without one)
    dashboard: bool = False  # GET /dashboard served (DASHBOARD_ENABLED; locally by default)
    smoke: SmokeWatch | None = None  # releases' smoke sessions, decided (docs/releases.md)
    eval_required: bool = False  # RELEASE_EVAL_REQUIRED: a new release's gate is its scenario suite
    # An admin's reads and stops of sessions another key started (dispatcher/api/admin_access.py).
    session_audit: AuditTrail = field(default_factory=MemoryTrail)
    # Capacity and API keys changed at runtime (dispatcher/api/runtime_settings.py), over these settings.
    runtime: RuntimeSettings | None = None
    capacity_floors: Floors | None = None
    artifacts: Artifacts | None = None  # every call kept: recordings, reports (docs/recording.md)
    usage: UsageCount | None = None  # ended sessions' use, rolled up per day (GET /usage)
    # A machine's end, finalised once its grace for its bot's report is over (a closing replica's, swept up here).
    machine_end_grace: MachineEndGrace | None = None
    usage_slots: UsageQuerySlots = field(default_factory=UsageQuerySlots)  # GET /usage queries in flight
    usage_days: UsageDays = field(default_factory=UsageDays)  # the days each client key reads a minute
    usage_answers: RecentAnswers = field(default_factory=RecentAnswers)  # the same query again, a few seconds
    usage_files: UsageFiles | None = None  # the daily usage files in the team's bucket (USAGE_FILES)
    model_service: ModelServiceAdmission | None = None  # the converged bots' shared model (MODEL_SERVICE_URL)
    trunk_calls: TrunkCalls | None = None  # calls placed through the SIP edge's trunks (SIP_EDGE_URL)
    sip_edge_status: SipEdgeStatus | None = None  # each SIP edge's own status, for GET /status and /metrics
    sip_edge: EdgeSecret | None = None  # SIP_EDGE_SECRET: the edge's proof on an inbound call's priced start
    whatsapp: WhatsAppCalls | None = None  # WhatsApp Business calls (WHATSAPP_NUMBERS and its credentials)
    # Campaigns of calls out (dispatcher/campaigns/): their rows (the store's, with several replicas), the numbers
    # none calls and how long a replica's hold on a row lasts.
    campaigns: CampaignBook = field(default_factory=MemoryCampaignBook)
    campaign_settings: CampaignSettings = field(default_factory=CampaignSettings)
    # A lifecycle webhook of no session (`campaign.finished`): the outbox's push (None: WEBHOOK_URL unset).
    push_webhook: Callable[[str, str, dict[str, Any]], None] | None = None

    @property
    def releases(self) -> LiveReleases:
        return self.sessions.releases

    async def aclose(self) -> None:
        if self.artifacts is not None:  # the uploads under way completed while the timeline still records
            await self.artifacts.aclose()
        if self.whatsapp is not None:  # before the sessions: its calls' handling stops their sessions
            await self.whatsapp.aclose()
        await self.sessions.aclose()
        if self.whatsapp is not None:  # the hang-ups its sessions' ends owe, for another replica's sweep
            await self.whatsapp.owed_at_shutdown()
        if self.reserve is not None:
            await self.reserve.aclose()
        if self.pool_sizing is not None:
            await self.pool_sizing.aclose()
        await self.machines.aclose()
        if self.rooms is not None:
            await self.rooms.aclose()
        await self.replication.aclose()
        await self.phone.transfers.aclose()
        if self.phone.daily_relay is not None:
            await self.phone.daily_relay.aclose()
        await self.peers.aclose()
        await self.region_relay.aclose()
        if self.key_homes is not None:
            await self.key_homes.aclose()
        if self.call_handoffs is not None:
            await self.call_handoffs.aclose()
        if self.webhook_sightings is not None:
            await self.webhook_sightings.aclose()
        if self.region_paces is not None:
            await self.region_paces.aclose()
        if self.region_releases is not None:
            await self.region_releases.aclose()
        if self.region_runtime is not None:
            await self.region_runtime.aclose()
        if self.smoke is not None:
            self.smoke.aclose()
        if self.model_service is not None:
            await self.model_service.capacity.aclose()
        if self.trunk_calls is not None:
            await self.trunk_calls.aclose()
