"""Where the dispatcher reaches Twilio's REST API: the account's region and edge, named as Twilio's SDKs
name them (`TWILIO_REGION`, `TWILIO_EDGE`: twilio-python's `Client(region=, edge=)`), the host built as
that SDK builds it (twilio/base/client_base.py `get_hostname`): `api.{edge}.{region}.twilio.com`, each
part left out when unset.

    neither        api.twilio.com              (US1, Twilio's default)
    us1            refused: leave it unset
    ie1, dublin    api.dublin.ie1.twilio.com
    au1, sydney    api.sydney.au1.twilio.com

Stricter than the SDK three times, each refused at start naming the fix. A region outside the US needs its
edge: the SDK's host for a region alone (`api.ie1.twilio.com`) is one Twilio stopped serving on 28 April
2026 (https://www.twilio.com/docs/global-infrastructure/api-domain-migration-guide). An edge needs its
region (the SDK would put it in US1): Pipecat's TwilioFrameSerializer, which reads these two variables in
the bots, requires both, so `us1` alone is refused too (unset is US1). Each region takes its own edge alone
(https://www.twilio.com/docs/twilio-cli/general-usage/regional).

Credentials are the region's own: an auth token or API key made in US1 is refused at IE1's host
(https://www.twilio.com/docs/global-infrastructure/manage-regional-api-credentials).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_choice

DEFAULT_REGION = "us1"
# Each region's edges for the REST API: US1 is reached without one (api.twilio.com, or api.us1.twilio.com).
REGION_EDGES: dict[str, tuple[str, ...]] = {"us1": (), "ie1": ("dublin",), "au1": ("sydney",)}


@dataclass(frozen=True)
class TwilioHost:
    region: str = ""  # "" = unset: Twilio's default, US1
    edge: str = ""

    @property
    def name(self) -> str:
        """The API's host name, as twilio-python's `get_hostname` builds it from `api.twilio.com`."""
        region = self.region or (DEFAULT_REGION if self.edge else "")
        return ".".join(part for part in ("api", self.edge, region, "twilio.com") if part)

    @property
    def url(self) -> str:
        return f"https://{self.name}"

    @property
    def shown_region(self) -> str:
        """The region as Twilio's Console names it: `IE1`; `US1` when unset."""
        return (self.region or DEFAULT_REGION).upper()


def twilio_host(env: Mapping[str, str]) -> TwilioHost:
    """`TWILIO_REGION` and `TWILIO_EDGE`, checked together; `SettingsError` naming the pair to set."""
    region, edge = setting_choice(env, "TWILIO_REGION"), setting_choice(env, "TWILIO_EDGE")
    if edge and not region:
        raise SettingsError(f"TWILIO_EDGE={edge} needs TWILIO_REGION={_region_of(edge)}, the region whose credentials "
                            "the dispatcher holds (Pipecat's hang-up in the bots needs both too)")
    edges = REGION_EDGES.get(region, ())
    if region and edges and edge not in edges:
        raise SettingsError(f"TWILIO_REGION={region} needs TWILIO_EDGE={edges[0]}"
                            + (f", not {edge}" if edge else "")
                            + f": Twilio's API for {region.upper()} is api.{edges[0]}.{region}.twilio.com "
                            f"(api.{region}.twilio.com, without the edge, is retired)")
    if region == DEFAULT_REGION and not edge:
        raise SettingsError(f"TWILIO_REGION={region} is Twilio's default: leave TWILIO_REGION unset for US1 (the bots' "
                            "Pipecat hang-up, which reads the same variable, refuses a region without an edge)")
    if region and not edges and edge:
        raise SettingsError(f"TWILIO_EDGE={edge} is {_region_of(edge).upper()}'s: TWILIO_REGION={region} is reached "
                            "without an edge, so leave TWILIO_EDGE unset")
    return TwilioHost(region, edge)


def _region_of(edge: str) -> str:
    return next(name for name, edges in REGION_EDGES.items() if edge in edges)
