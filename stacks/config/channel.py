"""The bot control channel per stack: the credential, the URL bots dial, and what the channel needs.

Bots dial *out* over the dispatcher's public HTTPS endpoint (`wss://…/bots/channel`: the ALB on
AWS, the Cloud Run URL on GCP), so their egress stays UDP + TCP 443. `botChannel` turns it on
(`profile: prod` derives it), and the stack makes its token (stacks/config/made_secrets.py) unless
`botChannelToken` sets one, which also turns it on; without it every start is cold, and the plan and
`voicefleet config check` say so (`cold_starts`). With it, AWS needs HTTPS and
`dispatcherDomain`, several replicas need the coordination store, Cloud Run's request timeout must
outlive an idle bot's wait plus its session, and the Cloud Run instances kept (less one) must hold
three requests a session and relay its audio within `CPU_CEILING` of their vCPUs
(docs/pulumi.md, the `botChannelToken` and Cloud Run rows).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import TYPE_CHECKING

import pulumi

from botchannel.contract import CHANNEL_PATH, CHANNEL_TOKEN_VARIABLE
from dispatcher.settings import MIN_BOT_CHANNEL_TOKEN_CHARS
from stacks.config import made_secrets
from stacks.config.limits import CLOUD_RUN_MAX_CONCURRENCY, CLOUD_RUN_MAX_TIMEOUT_SECONDS
from stacks.config.reader import Reader

if TYPE_CHECKING:
    from stacks.config.model import Settings

TOKEN_KEY = "botChannelToken"  # noqa: S105 - a config key, not a secret
CHANNEL_KEY = "botChannel"
# Where each machines provider's bots start, for the cold-start note.
PLATFORMS = {"ecs": "Fargate", "gce": "Compute Engine", "cloudrun": "Cloud Run", "aci": "Container Instances",
             "k8s": "Kubernetes"}
# The bot pings its channel this often (bot/channel_client.PING_INTERVAL_SECONDS; a test keeps them
# equal): an idle channel is never idle longer at the ALB, whose idle timeout must exceed it.
PING_INTERVAL_SECONDS = 10
# Slack on top of an idle bot's maximum wait plus its session (boot, the claim, the goodbye).
LIFETIME_MARGIN_SECONDS = 120
# Cloud Run requests per instance for the API itself (the stacks' value without the channel).
API_CONCURRENCY = 80
SOCKETS_PER_RELAYED_CALL = 3  # its bot channel, the client's (or carrier's) media socket, the bot's media socket
# Dispatcher CPU per relayed session: 0.37 % of one core (docs/performance.md, "Phone calls").
CORE_SHARE_PER_CALL = Fraction(37, 10_000)
CLOUD_RUN_VCPUS = 1  # the dispatcher container's CPU limit (stacks/gcp/dispatcher.py)
# The share of the survivors' vCPUs the relayed audio may take when one instance is lost: the rest
# serves the API's requests, the bot channels' pings and their JSON, and garbage collection.
CPU_CEILING = Fraction(4, 5)
# Cloud Run's autoscaler keeps instances near 60 % of their maximum concurrency and of their CPU
# (https://cloud.google.com/run/docs/about-instance-autoscaling).
CLOUD_RUN_TARGET = Fraction(3, 5)
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def token(cfg: Reader, rotation: made_secrets.Rotation) -> pulumi.Output[str] | None:
    """The channel's credential: the one set, else with `botChannel` one the stack makes; None: no channel."""
    given = cfg.secret(TOKEN_KEY, required=False, check=lambda text: _check_length(cfg, text))
    # Spelt as Reader.boolean reads it (`False` too): set false, never derived from a profile.
    if given is not None and (cfg.raw(CHANNEL_KEY) or "").lower() == "false":
        raise cfg.fail(CHANNEL_KEY, f"is false but {TOKEN_KEY} is set, which turns the channel on: pulumi config rm "
                                    f"{TOKEN_KEY} (every start cold) or pulumi config rm {CHANNEL_KEY}")
    if given is None and cfg.boolean(CHANNEL_KEY):
        return made_secrets.channel_token(rotation)
    return given


def _check_length(cfg: Reader, text: str) -> None:
    # Checked when the value is known (it is an Output); the dispatcher refuses a shorter one at start.
    if len(text) < MIN_BOT_CHANNEL_TOKEN_CHARS:
        raise cfg.fail(TOKEN_KEY, f"must be at least {MIN_BOT_CHANNEL_TOKEN_CHARS} characters; generate one with "
                                  "python -c 'import secrets; print(secrets.token_urlsafe(32))'")


def enabled(settings: Settings) -> bool:
    return settings.secrets.bot_channel_token is not None


def channel_url(host: pulumi.Input[str]) -> pulumi.Output[str]:
    """What bots dial: the dispatcher's public HTTPS name, TLS on 443 (bots' only TCP egress)."""
    return pulumi.Output.concat("wss://", host, CHANNEL_PATH)


def check(cfg: Reader, settings: Settings) -> None:
    if settings.turn is not None and not enabled(settings):
        # dispatcher/settings.py refuses TRANSPORTS=webrtc without it: a cloud bot listens on
        # nothing, so its SmallWebRTC signalling can only come over the channel.
        raise cfg.fail(CHANNEL_KEY, "must be true with a TURN relay (cloud WebRTC bots take their signalling over "
                                    f"the channel): pulumi config set {CHANNEL_KEY} true (the stack makes its token)")


def cold_starts(machines: str, cold_start_seconds: float, *, plain_http: bool = False) -> str:
    """What a stack without the channel means for its sessions, and the way to a warm reserve."""
    where = PLATFORMS.get(machines, machines)
    advice = (f"serve HTTPS (certificateArn, dispatcherDomain) and pulumi config set {CHANNEL_KEY} true"
              if plain_http else f"pulumi config set {CHANNEL_KEY} true (the stack makes its token)")
    return (f"no bot control channel, so no warm reserve: every start is cold, ~{cold_start_seconds:.0f} s on "
            f"{where}: {advice}; docs/reserve.md")


def aws_domain(cfg: Reader, settings: Settings, certificate_arn: str | None, idle_timeout: int) -> str | None:
    domain = cfg.optional("dispatcherDomain")
    if domain is not None and not DOMAIN.match(domain):
        raise cfg.fail("dispatcherDomain", f"must be a lowercase DNS name (got {domain!r})")
    if domain is not None and certificate_arn is None:
        raise cfg.fail("dispatcherDomain", "needs certificateArn (the name the ALB's certificate is issued for)")
    if not enabled(settings):
        if certificate_arn is not None and domain is None:
            pulumi.log.warn("certificateArn without dispatcherDomain: dispatcherUrl is the ALB's own name, which the "
                            "certificate does not cover, so clients that verify TLS refuse it. Set dispatcherDomain "
                            "to the certificate's name (and point its DNS record at albDnsName)")
        return domain
    if certificate_arn is None:
        raise cfg.fail(CHANNEL_KEY, "needs HTTPS (certificateArn): bots send its token on every connect. A plain-HTTP "
                                    f"stack (allowPlainHttp) runs without the channel ({CHANNEL_KEY}: false, "
                                    f"{TOKEN_KEY} unset; `profile: prod` turns it on): every start cold. Set "
                                    f"certificateArn, or pulumi config set {CHANNEL_KEY} false")
    if domain is None:
        raise cfg.fail("dispatcherDomain", f"is required with the channel ({CHANNEL_KEY}): bots dial wss://<dispatcherDomain>"
                                           f"{CHANNEL_PATH} and check the certificate's name (a DNS record "
                                           "pointing it at the ALB is yours to create)")
    if idle_timeout <= PING_INTERVAL_SECONDS:
        raise cfg.fail("albIdleTimeoutSeconds", f"must be longer than the channel's ping interval "
                                                f"({PING_INTERVAL_SECONDS} s) with {TOKEN_KEY} (got {idle_timeout})")
    return domain


def channel_lifetime_seconds(settings: Settings) -> int:
    """The longest a bot's channel stays open: an idle bot's wait, then its one session."""
    return int(settings.reserve.max_idle_seconds) + settings.max_session_seconds + LIFETIME_MARGIN_SECONDS


def surviving_instances(min_instances: int) -> int:
    """Cloud Run instances that hold every bot's channel while one instance is lost.

    Cloud Run sends a new request to an instance below its maximum concurrency, starting another
    instance when none is (up to max instances; beyond, it queues then answers 429), and a WebSocket
    is one request that may land on any instance
    (https://cloud.google.com/run/docs/about-concurrency,
    https://cloud.google.com/run/docs/about-instance-autoscaling,
    https://cloud.google.com/run/docs/triggering/websockets); any replica serves any bot's channel
    (docs/replicas.md). Only the minimum is kept running (max instances is a ceiling, not a promise),
    so the channels must fit the minimum less one; a stack of one instance (or none when idle) has no
    spare to count on, and every channel must fit that one."""
    return max(1, min_instances - 1)


def cloud_run_concurrency(settings: Settings, min_instances: int) -> int:
    """Each instance's share of the held requests (`held_requests`) if one of the minimum instances
    is lost, plus the API's own."""
    if not enabled(settings):
        return API_CONCURRENCY
    return _concurrency(held_requests(settings), min_instances)


def _concurrency(held: int, min_instances: int) -> int:
    return -(-held // surviving_instances(min_instances)) + API_CONCURRENCY


def held_requests(settings: Settings) -> int:
    """Requests held open at the peak (`_held`)."""
    return _held(settings.max_concurrent_sessions, settings.reserve.max_idle)


def _held(sessions: int, max_idle: int) -> int:
    """Every session's three requests (its bot's channel, and, relayed over a WebSocket, the client's or
    carrier's socket and its bot's media socket, each a request on Cloud Run:
    https://cloud.google.com/run/docs/triggering/websockets) and every idle or warming reserve bot's
    channel. Daily sessions hold one, but any API key may make a session a relayed one."""
    return SOCKETS_PER_RELAYED_CALL * sessions + max_idle


def relayed_cores(settings: Settings) -> Fraction:
    """The dispatcher vCPUs that relay every session's audio at once."""
    return settings.max_concurrent_sessions * CORE_SHARE_PER_CALL


def _minimum_fits(held: int, cores: Fraction, min_instances: int) -> bool:
    return (_concurrency(held, min_instances) <= CLOUD_RUN_MAX_CONCURRENCY
            and surviving_instances(min_instances) * CLOUD_RUN_VCPUS * CPU_CEILING >= cores)


def _instances_needed(held: int, cores: Fraction) -> int:
    """The least dispatcherMinInstances whose survivors hold every request beside the API's and
    relay every session's audio within `CPU_CEILING` of their vCPUs."""
    for_requests = -(-held // (CLOUD_RUN_MAX_CONCURRENCY - API_CONCURRENCY)) + 1
    for_cpu = math.ceil(cores / (CLOUD_RUN_VCPUS * CPU_CEILING)) + 1
    return max(for_requests, for_cpu, 2)


def scaling_needed(settings: Settings, min_instances: int) -> tuple[int, int]:
    """`least_instances` for the stack's peak."""
    return least_instances(settings.max_concurrent_sessions, settings.reserve.max_idle, min_instances)


def least_instances(sessions: int, max_idle: int, min_instances: int) -> tuple[int, int]:
    """The least (dispatcherMinInstances, dispatcherMaxInstances) for a peak of `sessions` and `max_idle`
    reserve bots, with the channel: the minimum as given if it fits, else the least whose survivors hold
    it; the maximum at least that, and enough instances for the autoscaler's 60 % target of
    concurrency and of CPU at that minimum's concurrency."""
    held, cores = _held(sessions, max_idle), sessions * CORE_SHARE_PER_CALL
    minimum = min_instances if _minimum_fits(held, cores, min_instances) else _instances_needed(held, cores)
    maximum = max(minimum, 1, math.ceil(held / (CLOUD_RUN_TARGET * _concurrency(held, minimum))),
                  math.ceil(cores / (CLOUD_RUN_TARGET * CLOUD_RUN_VCPUS)))
    return minimum, maximum


def unset_instances_risen(settings: Settings, minimum: int, maximum: int, *, min_set: bool,
                          max_set: bool) -> tuple[int, int]:
    """`risen_instances` for the stack's peak, with the channel (without it nothing rises)."""
    if not enabled(settings):
        return minimum, maximum
    return risen_instances(settings.max_concurrent_sessions, settings.reserve.max_idle, minimum, maximum,
                           min_set=min_set, max_set=max_set)


def risen_instances(sessions: int, max_idle: int, minimum: int, maximum: int, *, min_set: bool,
                    max_set: bool) -> tuple[int, int]:
    """With the channel, an unset dispatcherMinInstances or dispatcherMaxInstances rises from its
    default to the least the peak needs (`least_instances`); a default that holds the peak stays, and
    so does a set value (`cloud_run_limits` refuses it below the least)."""
    least_min, least_max = least_instances(sessions, max_idle, minimum)
    return minimum if min_set else least_min, maximum if max_set else max(maximum, least_max)


def cloud_run_limits(cfg: Reader, settings: Settings, min_instances: int, max_instances: int) -> None:
    if enabled(settings):
        minimum, maximum = scaling_needed(settings, min_instances)
        if minimum > min_instances or maximum > max_instances:
            sessions, idle = settings.max_concurrent_sessions, settings.reserve.max_idle
            raise cfg.fail("maxConcurrentSessions", (
                f"= {sessions} sessions and reserveMaxIdle ({idle}) bot channels hold up to "
                f"{held_requests(settings)} Cloud Run requests (three a session: its bot's channel and, over a "
                "WebSocket, which any API key may start, the client's and the bot's media sockets) and relay "
                f"{float(relayed_cores(settings)):g} vCPUs of audio (0.37 % of a core a session, "
                f"docs/performance.md). The instances kept running less one that may be lost must hold both "
                f"({CLOUD_RUN_MAX_CONCURRENCY} requests each, {API_CONCURRENCY} kept for the API; "
                f"{CLOUD_RUN_VCPUS} vCPU each, the audio on at most {float(CPU_CEILING):.0%} of it), and the "
                "maximum must let the autoscaler keep 60 % of each instance's concurrency and CPU: "
                f"set dispatcherMinInstances to at least {minimum} and "
                f"dispatcherMaxInstances to at least {maximum} (got {min_instances} and {max_instances}), "
                "or lower the cap"))
    if enabled(settings) and channel_lifetime_seconds(settings) > CLOUD_RUN_MAX_TIMEOUT_SECONDS:
        raise cfg.fail("maxSessionSeconds", f"plus reserveMaxIdleSeconds ({settings.reserve.max_idle_seconds}) "
                                            f"and {LIFETIME_MARGIN_SECONDS} s must fit Cloud Run's "
                                            f"{CLOUD_RUN_MAX_TIMEOUT_SECONDS} s request timeout, which ends a "
                                            f"bot's channel (got {settings.max_session_seconds})")


def channel_secrets(settings: Settings) -> dict[str, pulumi.Output[str]]:
    """What goes into the stack's secret store for the channel (nothing without it), set or made."""
    token = settings.secrets.bot_channel_token
    return {} if token is None else {CHANNEL_TOKEN_VARIABLE: token}
