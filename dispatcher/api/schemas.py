"""Request and response bodies of the HTTP contract (docs/design.md §3), as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.phone.sip_edge_status import SipEdgeOut
from dispatcher.sessions.ids import IDEMPOTENCY_KEY

# POST /start's query and header, read by the route itself (FastAPI's parameter solving cost a
# start more than the two look-ups; docs/performance.md), documented as FastAPI would document them.
START_PARAMETERS: list[dict[str, Any]] = [
    {"name": "wait", "in": "query", "required": False, "description": "`started`: block until the bot runs",
     "schema": {"type": "string", "pattern": "^started$", "title": "Wait"}},
    {"name": "Idempotency-Key", "in": "header", "required": False,
     "description": "The same key again (with the same body) answers the session it started, 200, never a second one.",
     "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern, "title": "Idempotency-Key"}},
]


class RecordingAsked(BaseModel):
    """A start's recording, field by field (each left out: as the policy says)."""

    model_config = ConfigDict(extra="forbid")
    audio: Literal["off", "consent", "on"] | None = None
    transcript: Literal["off", "consent", "on"] | None = None


class SipTrunkAsked(BaseModel):
    """An inbound SIP call's trunk and its price, which only the SIP edge may send (docs/sip.md)."""

    model_config = ConfigDict(extra="forbid")
    trunk: str = Field(min_length=1, max_length=64)
    usd_per_minute: float = Field(ge=0, le=10)
    increment_seconds: int = Field(default=60, ge=1, le=60)


class StartRequest(BaseModel):
    """Pipecat's start request (the dev runner's and Pipecat Cloud's keys) plus the bot's data.

    Without a `body` key, the other top-level keys are the bot's data (the free-form `requestData`
    of Pipecat's client docs); with one, any other key is an error.
    """

    model_config = ConfigDict(extra="allow")

    body: dict[str, Any] | None = Field(
        default=None, description="Passed to the bot as is (at most 4 KB as JSON)."
    )
    transport: str | None = Field(
        default=None,
        max_length=40,
        description="`daily` or `webrtc` (the deployment's `TRANSPORTS`); default `DEFAULT_TRANSPORT`; a phone "
        "call: `websocket`, `twilio`, `telnyx`, `plivo` or `exotel` (docs/phone.md). Others: 400.",
    )
    createDailyRoom: bool | None = Field(
        default=None,
        description="`true` asks for a Daily session, `false` for one without a Daily room (Pipecat Cloud's key).",
    )
    enableDefaultIceServers: bool | None = Field(
        default=None,
        description="WebRTC: with no `ICE_SERVERS` configured, answer Pipecat's default public STUN server.",
    )
    dailyRoomProperties: dict[str, Any] | None = Field(
        default=None, description="Cloud: Daily room properties a caller may set (README lists them)."
    )
    dailyMeetingTokenProperties: dict[str, Any] | None = Field(
        default=None, description="Cloud: the user's meeting-token properties a caller may set (README)."
    )
    release: str | None = Field(
        default=None,
        max_length=40,
        description="Run exactly this release of the bot (docs/releases.md), even one taking no traffic; unknown: "
        "422 `unknown_release` naming the live ones. Default: the API key's release, else one drawn by weight.",
    )
    region: str | None = Field(
        default=None,
        max_length=20,
        description="With several regions: start the session in this region and nowhere else (never spilled "
        "over). Unknown: 400.",
    )
    recording: Literal["off", "consent", "on"] | RecordingAsked | None = Field(
        default=None,
        description="Lowers this session's recording policy, never raises it (422 `recording_not_allowed`): "
        "`off` keeps nothing of it; `{\"audio\": \"off\", \"transcript\": \"on\"}` sets each on its own. "
        "A phone transport's token carries it to the call's session. docs/recording.md.",
    )
    maxWaitSeconds: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="The longest the caller will wait for a ready bot: with no warm bot free and a cold start "
        "quoted longer, the start is refused at once (503 `cold_start_too_slow`, `Retry-After`) and nothing starts.",
    )
    sip_trunk: SipTrunkAsked | None = Field(
        default=None,
        description="The SIP edge's own: an inbound call's trunk and its price a minute, taken only with the edge's "
        "own credential in `X-Voicefleet-Edge-Secret` (derived from `SIP_EDGE_SECRET`); from anyone else, 403 "
        "`sip_edge_only`.",
    )
    eval: bool | None = Field(
        default=None,
        description="`true`: an eval's call (docs/evals.md). It runs a known release: `release`, else the key's, "
        "else the stable one (never drawn by weight; the answer's `release` names it). It is never judged by the "
        "automatic rollback and left out of the per-release cost metrics, yet billed to its key like any call "
        "(`GET /usage`, with `eval` as of which evals); `GET /sessions` shows it (`?eval=`). On a "
        "phone transport the call token carries it (and `release`) to the session the carrier's stream opens.",
    )
    eval_token: str | None = Field(
        default=None,
        max_length=1024,
        description="The SIP edge's: an inbound call's `X-Voicefleet-Eval` header, a token from `POST "
        "/sip/eval_tokens` that marks the call an eval's and pins its release, as `eval` and `release` do for a "
        "start a caller sends. Only with a phone transport, and only from the key that asked for it; forged, "
        "expired, spent or another key's: 403 `eval_token_refused` (`error.reason`), and nothing starts.",
    )


class IceServerOut(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceConfigOut(BaseModel):
    iceServers: list[IceServerOut]
    iceTransportPolicy: Literal["relay"] | None = Field(
        default=None, description="`relay` when the deployment wants relayed media only (`ICE_TRANSPORT_POLICY`)."
    )


class ServicesCostOut(BaseModel):
    """What the bot's services used, as its `ended` report says, at the services' price table."""

    reported: bool = Field(description="`false`: the bot ended without reporting its services' usage.")
    usd: float = Field(description="The priced rows' sum; a row not priced is listed, never counted as 0.")
    not_priced: list[str] = Field(description="The services with no price in the table (`USAGE_PRICES`).")
    usage: list[dict[str, Any]] = Field(
        description="A row per service and model: `kind` (llm, tts, stt), `processor`, `model`, its counts, and "
        "`usd` with `price_source`, or `priced: \"not priced\"` with `why`."
    )


class RelayCostOut(BaseModel):
    """The TURN relay's share of a WebRTC call, from its bot host's report (docs/operations.md)."""

    model_config = ConfigDict(extra="allow")  # its price: `usd_per_gb`, `price_source`, `priced_bytes`…
    relayed: bool = Field(description="A relay candidate in the call's selected ICE pair (either side).")
    local_candidate: str = Field(description="The bot's candidate type: host, srflx, prflx or relay.")
    remote_candidate: str = Field(description="The caller's candidate type: host, srflx, prflx or relay.")
    bytes_sent: float = Field(description="What the bot's connection sent (aiortc's DTLS transport count).")
    bytes_received: float = Field(description="What it received.")
    packets_sent: float = Field(description="Its packets sent.")
    packets_received: float = Field(description="Its packets received.")
    usd: float | None = Field(
        default=None, description="The relay's share: 0 when not relayed; left out when not priced (`priced`, `why`)."
    )


class TelephonyLegOut(BaseModel):
    """One call leg's minutes at its trunk's price, as the SIP edge's file gives it (docs/sip.md)."""

    trunk: str = Field(description="The trunk that carried the call (its `name` in the edge's file).")
    direction: Literal["inbound", "outbound"] = Field(description="Who called: the trunk, or the edge through it.")
    usd_per_minute: float | None = Field(
        default=None, description="The trunk's price a minute for this direction; left out when it has none "
        "(`priced`, `why`).")
    increment_seconds: int | None = Field(
        default=None, description="The carrier's billing increment: answered time is rounded up to it; left out "
        "when not priced.")
    answered: bool = Field(description="`false`: never answered, so no minutes.")
    seconds: float = Field(description="From the answer to the hang-up (or now, while the call is up).")
    billed_minutes: float | None = Field(
        default=None, description="`seconds` rounded up to the increment, in minutes; left out when not priced.")
    usd: float | None = Field(
        default=None, description="`billed_minutes` × `usd_per_minute`; left out when not priced, never 0 then.")
    priced: Literal["not priced"] | None = Field(
        default=None, description="The session's own call on a trunk with no price for its direction, whose "
        "bridged leg to a person is priced: its minutes are not in `telephony_usd` (`not_counted` says so).")
    why: str | None = Field(default=None, description="With `priced`: the trunk and the price it lacks.")
    live: bool | None = Field(default=None, description="`true` while the call is up: priced until now.")


class TelephonyCostOut(TelephonyLegOut):
    """A SIP call's minutes at its trunk's price, and a bridged transfer's leg to the person (docs/sip.md)."""

    bridged: TelephonyLegOut | None = Field(
        default=None, description="A cold transfer the edge bridged: its call to the person through the trunk, "
        "from their answer to the hang-up, at the trunk's outbound price; its `usd` is in `telephony_usd`.")


class CostOut(BaseModel):
    """What the session cost (docs/operations.md, "What a call costs, and who used it"): its machine, its
    bot's services and a relayed WebRTC call's TURN relay. Without a price for the provider and size, the
    amounts are left out and `not_counted` says so."""

    currency: Literal["USD"] = "USD"
    total: float | None = Field(
        default=None, description="`machine_usd` + the services' priced `usd` + the priced `relay_usd` + "
        "`telephony_usd`."
    )
    machine_usd: float | None = Field(default=None, description="`session_usd` + `idle_usd`.")
    services: ServicesCostOut | None = Field(default=None, description="The bot's LLM, TTS and STT use, priced.")
    relay_usd: float | None = Field(
        default=None, description="The TURN relay's share: 0 for a call not relayed; left out when not measured or "
        "not priced (`not_counted` says which)."
    )
    relay: RelayCostOut | None = Field(
        default=None, description="How the WebRTC call's media went, as its bot host measured it, and its relay priced."
    )
    telephony_usd: float | None = Field(
        default=None, description="A SIP call through a priced trunk: its answered minutes at the trunk's price, "
        "and a bridged transfer's leg to the person at the outbound price (the priced legs' sum)."
    )
    telephony: TelephonyCostOut | None = Field(
        default=None, description="A SIP call's line: its trunk, direction, price a minute, answered seconds and "
        "the minutes billed (rounded up to the trunk's increment)."
    )
    session_usd: float | None = Field(default=None, description="`session_seconds` × the price.")
    idle_usd: float | None = Field(default=None, description="`idle_seconds` × the price.")
    machine_seconds: float = Field(description="`session_seconds` + `idle_seconds`.")
    session_seconds: float = Field(
        description="From the machine's launch (or its claim from the warm reserve) to the bot's end, or now."
    )
    idle_seconds: float = Field(
        description="A bot claimed from the warm reserve: its idle time before the claim (0 for a cold launch)."
    )
    price_per_hour: float | None = Field(default=None, description="One running bot's machine, in USD an hour.")
    provider: str = Field(description="The machines provider (`MACHINES`).")
    size: str | None = Field(default=None, description="The machine as priced, e.g. `1 vCPU, 2 GB`.")
    price_source: str | None = Field(default=None, description="Where the price comes from.")
    estimated: bool = Field(
        description="`true` while the session runs (priced until now) or when it ended without its bot's report."
    )
    not_counted: list[str] = Field(description="What the total leaves out (Daily minutes, the bot's own API bills…).")


class SessionOut(BaseModel):
    """Fields that do not apply are left out, never sent as `null`."""

    session_id: str
    sessionId: str | None = Field(default=None, description="`session_id` under Pipecat's name.")
    status: Literal["starting", "started", "joined", "ended", "failed"] | None = None
    region: str | None = Field(default=None, description="With several regions: the region that holds the session.")
    spilled_from: str | None = Field(
        default=None, description="The region the start arrived at, when it could not start it warm and this one "
        "could (spill-over)."
    )
    created_at: float | None = Field(default=None, description="Epoch seconds when the machine was launched.")
    detail: str | None = Field(default=None, description="Why a session ended or failed.")
    ready_in_seconds: float | None = Field(
        default=None,
        description="While `starting`: the seconds still to wait for the bot, the median of this deployment's "
        "measured cold starts that took at least as long as this one has so far, less that wait (never growing).",
    )
    ready_in_basis: Literal["measured", "default"] | None = Field(
        default=None,
        description="With `ready_in_seconds`: `measured` (this deployment's own cold starts) or `default` (none "
        "measured yet: the provider's published cold start, `RESERVE_COLD_START_SECONDS`).",
    )
    offer_url: str | None = Field(default=None, description="Local: where to POST the WebRTC offer.")
    room_url: str | None = Field(default=None, description="Cloud: the Daily room to join.")
    dailyRoom: str | None = Field(default=None, description="`room_url` under Pipecat's name.")
    trace_id: str | None = Field(default=None, description="The session's trace (OpenTelemetry, 32 hex digits).")
    error: str | None = Field(default=None, description="The last fatal pipeline error the bot reported.")
    release: str | None = Field(default=None, description="The bot's release the session runs (docs/releases.md).")
    cost: CostOut | None = Field(default=None, description="`GET`: what the session's machine cost so far.")
    eval: bool | None = Field(default=None, description="`true` for an eval's session (its start's `eval`).")


class StartOut(SessionOut):
    """The full answer to a `{"body": ...}` request. A request in Pipecat's shape gets only
    Pipecat's fields (README: "Use it from a Pipecat client")."""

    session_id: str | None = None  # type: ignore[assignment]
    token: str | None = Field(
        default=None,
        description="Cloud: the user's meeting token (not an owner). A phone call: the one-time token for `wsUrl`.",
    )
    wsUrl: str | None = Field(
        default=None, description="A phone call (`transport: websocket` or a carrier): connect to `{wsUrl}/{token}`."
    )
    dailyToken: str | None = Field(default=None, description="`token` under Pipecat's name.")
    iceConfig: IceConfigOut | None = Field(
        default=None, description="WebRTC: the ICE servers to use (`ICE_SERVERS`, or `enableDefaultIceServers`)."
    )


class Offer(BaseModel):
    """Pipecat SmallWebRTC signalling: an SDP offer, answered with `{sdp, type, pc_id}`."""

    model_config = ConfigDict(extra="allow")

    sdp: str = Field(min_length=1, max_length=60_000)
    type: Literal["offer"]
    pc_id: str | None = Field(default=None, max_length=200)
    restart_pc: bool | None = None
    requestData: dict[str, Any] | None = Field(
        default=None, description="Pipecat: the bot's data for this connection; replaces the start `body` (≤ 4 KB)."
    )
    request_data: dict[str, Any] | None = Field(default=None, description="`requestData` as the dev runner spells it.")


class IceCandidate(BaseModel):
    candidate: str = Field(max_length=2000)
    sdp_mid: str | None = Field(default=None, max_length=200)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)


class CandidatesPatch(BaseModel):
    pc_id: str = Field(min_length=1, max_length=200)
    candidates: list[IceCandidate] = Field(max_length=100)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail
    detail: str = Field(description="The message again, where Pipecat's clients look for it.")


# Every error status a session route may answer, each documented with the one error body.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 404, 409, 413, 422, 429, 502, 503, 504)
}


# GET /status and GET /status/history (docs/http-api.md, "The deployment at a glance").
class StatusEvals(BaseModel):
    running: int = Field(description="Evals' sessions (`eval: true`) whose machine runs, in this region.")
    by_release: dict[str, int]


class StatusSessions(BaseModel):
    running: int = Field(description="Callers' sessions whose machine is starting, started or joined, in this "
                         "region (evals' sessions are counted apart, in `evals`).")
    by_status: dict[str, int]
    by_release: dict[str, int]
    by_region: dict[str, int] = Field(description="This region's count (each region counts its own).")
    evals: StatusEvals = Field(description="Evals' sessions, left out of the counts above (docs/evals.md).")


class StatusReserve(BaseModel):
    enabled: bool = Field(description="False: every start is cold (no reserve here, or RESERVE_MAX_IDLE=0).")
    total: int
    by_state: dict[str, int] = Field(description="idle, warming, frozen, resuming.")
    by_release: dict[str, int] = Field(description="`(retiring)`: bots of an image no release with traffic has.")
    by_region: dict[str, int] = Field(description="This region's, and each peer's idle and warming bots as it "
                                      "last advertised them.")
    problem: str | None = Field(default=None, description="The store does not answer: the reserve shown is this "
                                "replica's own.")


class StatusWindow(BaseModel):
    starts: int = Field(description="Sessions started (a replayed Idempotency-Key is not counted).")
    refused: int = Field(description="POST /start calls that started nothing.")
    refusals: dict[str, int] = Field(description="The refused ones by error code.")
    cold: dict[str, int] = Field(default_factory=dict, description="Starts launched cold though the reserve "
                                 "had a bot, by why (`key_warm_share`: the key had claimed its warm share).")


class StatusCost(BaseModel):
    dollars_per_hour: float | None = Field(description="Running machines (sessions and hot reserve bots) and frozen "
                                           "ones at the list prices of dispatcher/reserve/prices.py; null: not "
                                           "priced.")
    running_machines: int
    frozen_machines: int
    machine_dollars_per_hour: float | None = None
    note: str | None = None


class StatusRegion(BaseModel):
    name: str
    here: bool
    reachable: bool
    reserve: int | None


class StatusCell(BaseModel):
    name: str = Field(description="The cell: a Fly app (`FLY_APPS`), an AWS account (`ECS_CELLS`), a GCP project "
                      "(`CLOUDRUN_CELLS`, `GCE_CELLS`).")
    launches_per_second: float = Field(description="Machines created there by this replica, over the last 10 s.")
    running: int = Field(description="Its running machines, as last listed (and launched since) here.")
    room: int | None = Field(description="The most it may run (`max_tasks`); null: its own quotas.")
    drained_until: float | None = Field(description="Epoch seconds until which its starts go elsewhere after it "
                                        "throttled; null: open.")
    reason: str | None = Field(description="What it answered when drained (ThrottlingException, a quota).")
    unreadable: str | None = Field(default=None, description="Why its tasks could not be listed last time (they "
                                   "then go uncounted here); null: listed.")


class StatusReplica(BaseModel):
    id: str
    sessions: int = Field(description="Sessions whose bot's channel ends at this replica.")
    reserve: int


class StatusOut(BaseModel):
    at: float = Field(description="When it was counted (epoch seconds); answers are reused for 2 s.")
    counted_at: float = Field(description="When the provider's list of every machine behind `sessions` and `cost` "
                                          "was asked for (epoch seconds): any replica's, reused while fresh.")
    region: str = Field(description="`default` without REGION.")
    replica: str = Field(description="The replica that answered.")
    provider: str
    scope: dict[str, str] = Field(description="What each part counts: `region` (every replica's) or `replica` "
                                  "(the one that answered).")
    sessions: StatusSessions
    reserve: StatusReserve
    starts: dict[str, StatusWindow] = Field(description="Over the last `1m`, `5m` and `15m`, at this replica.")
    cost: StatusCost
    replicas: list[StatusReplica] = Field(description="Replicas seen in the store's reserve pool (with a reserve).")
    replicas_not_answering: list[dict[str, Any]] = Field(
        default_factory=list, description="Replicas the answering replica saw before that no longer answer "
        "(their heartbeat's lease ran out without a drain), each `id` and `last_seen` (epoch seconds); named "
        "for an hour.")
    regions: list[StatusRegion]
    cells: list[StatusCell] | None = Field(
        default=None, description="Where the provider launches over cells (docs/operations.md, \"Cells\"), each "
        "cell as this replica sees it; absent otherwise.")
    recordings: dict[str, Any] | None = Field(
        default=None, description="Every call kept (docs/recording.md): `policy` (`RECORDING`), `audio`, "
        "`transcript`, `retention_days`, `required`, `rules` (`RECORDING_RULES`), `unknown_releases` (those the "
        "rules name that the catalogue does not have), `destination` (a folder, or s3://bucket/prefix) and, only "
        "when recordings cannot be kept now, `error` (calls run unrecorded).")
    model_service: dict[str, Any] | None = Field(
        default=None, description="The shared model service converged bots stream to (`MODEL_SERVICE_URL`; absent "
        "without it): `url`, `state` (`ok`, or `unknown`: a failed or stale read, an answer that is no capacity), "
        "`free` and `total` streams by its last read (null when unknown), `read_seconds_ago`, `problem` (why "
        "unknown) and `starting_here` (starts admitted here not yet in its count).")
    sip_edges: list[SipEdgeOut] | None = Field(
        default=None, description="Each SIP edge SIP_EDGE_URL lists (absent without it), asked at most every 5 s, "
        "each within 2 s (docs/sip.md, \"Is the edge up?\").")


class StatusSample(BaseModel):
    at: int = Field(description="The minute's start, epoch seconds.")
    starts: int
    refused: int
    ready_p50: float | None = Field(description="Time to ready (POST /start to the bot's `ready`), seconds.")
    ready_p95: float | None
    sessions: int | None = Field(description="The minute's last sample of the sessions running.")
    reserve_idle: int | None


class StatusHistoryOut(BaseModel):
    replica: str
    minute_seconds: int = 60
    samples: list[StatusSample] = Field(description="The last hour at this replica, oldest first; a minute with "
                                        "nothing recorded is absent.")
