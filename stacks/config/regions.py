"""A regional stack's place among its deployment's regions (docs/regions.md, "Setting up").

    voicefleet:region        this region's name (REGION)
    voicefleet:regions       every region's public dispatcher URL, this one included (REGIONS): a map
                             {name: url} or the dispatcher's own `name=url,…` text
    voicefleet:regionSecret  --secret: the key regions sign what they ask each other with (REGION_SECRET),
                             reaching the dispatcher by reference only
    voicefleet:regionAcceptedSecret  --secret, only while `regionSecret` changes: the change's other
                             secret, checked against but never signed with (REGION_ACCEPTED_SECRET),
                             by reference only; the program warns while it is set
    voicefleet:regionSpillBudgetMs, regionHoldForNeighbours  the planner's regional settings
                             (REGION_SPILL_BUDGET_MS, REGION_HOLD_FOR_NEIGHBOURS), only with regions

Set together or not at all. The rules are the dispatcher's own (dispatcher/regions/config.py, run
here on the same text), so a stack that previews is one whose dispatchers start; this region's URL
must also be this stack's public dispatcher URL, which each cloud checks where it knows it
(`aws_url`, and stacks/gcp/stack.py once the project number is known).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pulumi

from dispatcher.regions.config import ACCEPTED_SECRET_VARIABLE, MIN_REGION_SECRET_CHARS, Regions
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config.reader import DEFAULTS, Reader

KEYS = ("region", "regions", "regionSecret")
SECRET_KEY = "regionSecret"  # noqa: S105 - a config key, not a secret
ACCEPTED_SECRET_KEY = "regionAcceptedSecret"  # noqa: S105 - a config key, not a secret
# The planner's settings for regions (dispatcher/reserve/planner.py), with regions only.
PLANNER_KEYS = ("regionSpillBudgetMs", "regionHoldForNeighbours")
# A placeholder as long as the rule asks: the real secret is an Output, checked when known (`_check_secret`).
_STAND_IN_SECRET = "x" * MIN_REGION_SECRET_CHARS


@dataclass(frozen=True)
class RegionSettings:
    here: str
    urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    listing: str = ""  # REGIONS in the dispatcher's canonical spelling
    planner: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # PLANNER_KEYS' variables

    @property
    def url(self) -> str:
        """This region's own public URL."""
        return self.urls[self.here]



def load(cfg: Reader) -> tuple[RegionSettings | None, pulumi.Output[str] | None]:
    """The region's settings and its secret (an Output for the secret stores), or (None, None)."""
    here, listed = cfg.optional("region"), _listing(cfg)
    secret = cfg.secret(SECRET_KEY, required=False, check=lambda text: _check_secret(cfg, SECRET_KEY, text))
    given = {"region": here is not None, "regions": listed is not None, SECRET_KEY: secret is not None}
    if not any(given.values()):
        for key in PLANNER_KEYS:
            # `pulumi up` hands the program Pulumi.yaml's default of every key the stack leaves unset
            # (ValidateStackConfigAndApplyProjectConfig): only another value was set by someone.
            if (cfg.raw(key) or "").lower() not in ("", str(DEFAULTS[key]).lower()):
                raise cfg.fail(key, f"is set without region, regions and {SECRET_KEY}: it tunes how a region "
                                    f"leans on its neighbours (docs/regions.md); pulumi config rm {key}")
        return None, None
    if not all(given.values()):
        missing = [key for key, present in given.items() if not present]
        set_ = [key for key, present in given.items() if present]
        raise cfg.fail(missing[0], f"must be set with {', '.join(set_)}: a region needs its name, every region's "
                                   f"URL and the shared secret ({', '.join(missing)} missing; docs/regions.md)")
    assert here is not None and listed is not None
    try:
        parsed = Regions.from_env({"REGION": here, "REGIONS": listed, "REGION_SECRET": _STAND_IN_SECRET})
    except DispatcherSettingsError as exc:
        key = "region" if str(exc).startswith("REGION=") else "regions"
        raise cfg.fail(key, f"is refused as the dispatcher would refuse it: {exc}") from None
    return RegionSettings(parsed.here, MappingProxyType(dict(parsed.urls)), parsed.listing(),
                          MappingProxyType(_planner(cfg))), secret


def _planner(cfg: Reader) -> dict[str, str]:
    """The planner's regional variables, refused at preview as the dispatcher would refuse them."""
    # The reserve's planner (its forecast, demand and neighbours with it): imported by a stack of several
    # regions only, which alone sets these; a stack's config check of one region never needs it.
    from dispatcher.reserve.planner import PlannerSettings

    budget = str(cfg.integer("regionSpillBudgetMs", minimum=0))  # whole milliseconds, as Pulumi.yaml declares
    env = {"REGION_SPILL_BUDGET_MS": budget, "REGION_HOLD_FOR_NEIGHBOURS": "1" if cfg.boolean("regionHoldForNeighbours")
           else "0"}
    try:
        PlannerSettings.from_env(env)
    except DispatcherSettingsError as exc:
        raise cfg.fail("regionSpillBudgetMs", f"is refused as the dispatcher would refuse it: {exc}; the round trip "
                                              "in milliseconds, 0 or more (docs/regions.md)") from None
    return env


def _listing(cfg: Reader) -> str | None:
    """`regions` as the dispatcher's `name=url,…`: a map (`pulumi config set --path 'regions.eu' URL`)
    or that text itself."""
    raw = cfg.raw("regions")
    if raw is None:
        return None
    try:
        value = cfg.config.get_object("regions")
    except (ValueError, pulumi.config.ConfigTypeError):
        value = raw
    if isinstance(value, dict):
        if not all(isinstance(url, str) for url in value.values()):
            raise cfg.fail("regions", "must map each region's name to its URL, e.g. {eu: https://eu.voice.example.com}")
        return ",".join(f"{name}={url}" for name, url in value.items()) or None
    if isinstance(value, str):
        return value
    raise cfg.fail("regions", f"must be a map of name to URL or name=url,… (got {raw!r})")


def accepted_secret(cfg: Reader, regions: RegionSettings | None) -> pulumi.Output[str] | None:
    """During a change of `regionSecret`, the other secret: taken from other regions, never signed with."""
    accepted = cfg.secret(ACCEPTED_SECRET_KEY, required=False,
                          check=lambda text: _check_secret(cfg, ACCEPTED_SECRET_KEY, text))
    if accepted is None:
        return None
    if regions is None:
        raise cfg.fail(ACCEPTED_SECRET_KEY, "is set without region, regions and regionSecret: it only accompanies "
                                            f"{SECRET_KEY} during a change of it; pulumi config rm "
                                            f"{ACCEPTED_SECRET_KEY}")
    current = cfg.config.get_secret(SECRET_KEY)  # set: `load` required it with `regions`
    if current is not None:
        pulumi.Output.all(current, accepted).apply(lambda both: _secrets_differ(cfg, both[0], both[1]))
    # Said by the program itself, so a plain `pulumi up` shows it too.
    pulumi.log.warn(f"{ACCEPTED_SECRET_KEY} is set: this region also takes requests and answers signed with it. "
                    "A change of the regions' secret is under way (docs/regions.md); once its last step has "
                    f"rolled out in every region: pulumi config rm {ACCEPTED_SECRET_KEY} && pulumi up")
    return accepted


def _secrets_differ(cfg: Reader, current: str, accepted: str) -> None:
    if current.strip() == accepted.strip():
        raise cfg.fail(ACCEPTED_SECRET_KEY, f"is the same as {SECRET_KEY}: it holds the other secret of a change "
                                            "(docs/regions.md)")


def _check_secret(cfg: Reader, key: str, text: str) -> None:
    if len(text) < MIN_REGION_SECRET_CHARS:
        raise cfg.fail(key, f"must be at least {MIN_REGION_SECRET_CHARS} characters, the same in every region; "
                                   "generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'")


def aws_url(cfg: Reader, regions: RegionSettings | None, domain: str | None) -> None:
    """On AWS a region's URL is https://<dispatcherDomain>, the name its ALB's certificate covers."""
    if regions is None:
        return
    if domain is None:
        raise cfg.fail("dispatcherDomain", f"is required with regions: other regions call this one at its URL "
                                           f"({regions.url}), the name the ALB's certificate covers")
    if regions.url != f"https://{domain}":
        raise cfg.fail("regions", f"lists {regions.here}={regions.url}, but this stack's dispatcher is "
                                  f"https://{domain} (dispatcherDomain): list the URL this region answers at")


def gcp_check(regions: RegionSettings, service_url: str) -> None:
    """On GCP a region's URL is its Cloud Run service's deterministic URL, known once the project's
    number is (stacks/gcp/stack.py)."""
    if regions.url != service_url:
        raise Reader("voicefleet").fail("regions", f"lists {regions.here}={regions.url}, but this stack's dispatcher "
                                                   f"is {service_url} (Cloud Run's URL): list the URL this region "
                                                   "answers at")


def secrets(regions: RegionSettings | None, secret: pulumi.Output[str] | None,
            accepted: pulumi.Output[str] | None = None) -> dict[str, pulumi.Output[str]]:
    """What goes into the stack's secret store for the regions (nothing for a single region)."""
    if regions is None or secret is None:
        return {}
    return {"REGION_SECRET": secret, **({ACCEPTED_SECRET_VARIABLE: accepted} if accepted is not None else {})}
