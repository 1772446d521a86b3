"""A stack key nobody reads is a misspelling (`reserveMaxIdel`), which would otherwise leave its key's
default in place in silence: refused, naming the nearest real key.

Known: the keys Pulumi.yaml declares (the program reads it from the repository beside it, under
`pulumi up` and offline alike), DEFAULTS, and every key the program asked for while loading (secrets
that need no declaration, `storePassword`, among them). A provider's namespace (`aws:region`) holds
the keys its installed SDK reads (its generated config/vars.py, read as text: nothing is imported); a
namespace no installed provider has is refused only when it is a letter or two from one (`awz:`).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from dispatcher.settings.typos import edits, nearest
from stacks.config.project_file import PROJECT_FILE, project_config
from stacks.config.reader import DEFAULTS, NAMESPACE

# The provider SDKs the stacks use; each one's config/vars.py names its namespace and the keys it reads.
PROVIDER_PACKAGES = ("pulumi_aws", "pulumi_gcp", "pulumi_azure_native", "pulumi_kubernetes", "pulumi_tls",
                     "pulumi_docker_build")
# The providers' credential keys (Pulumi marks them secret in each provider's schema; vars.py does not say):
# a value of one is never plain text, so `voicefleet config --config` refuses them as it refuses the stack's.
PROVIDER_CREDENTIALS = frozenset({
    "aws:accessKey", "aws:secretKey", "aws:token", "gcp:credentials", "gcp:accessToken",
    "azure-native:clientSecret", "azure-native:clientCertificatePassword", "azure-native:oidcToken",
    "azure-native:oidcRequestToken", "docker-build:registries",  # a registry's password among its fields
})
# Other Pulumi packages' namespaces an edit from one here, never a slip of it (`awsx:` is Crosswalk's).
OTHER_PACKAGES = frozenset({"awsx"})
# Keys only one cloud's program reads (or two: botCpu), and the providers' namespaces by cloud: set in a
# stack of another cloud, nothing reads them, and the operator likely meant another stack file.
CLOUD_KEYS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("vpcCidr", "azCount", "storeEcpuPerSecond", "storeDataGb", "ecsCapacityProviders",
                     "albIdleTimeoutSeconds", "keepAliveSeconds", "allowedCidrs", "containerInsights",
                     "secretRecoveryDays", "alarmTopicArn", "turnInstanceType", "ecsCells", "ecsCellBotTaskRoleArns"),
                    ("aws",)),
    **dict.fromkeys(("gcpZone", "subnetCidr", "botRuntime", "cloudRunExecutionQuota", "cloudRunCells", "gceCells",
                     "botMachineType", "botDiskGb",
                     "dispatcherMinInstances", "dispatcherMaxInstances", "alarmNotificationChannels",
                     "alertPolicies", "turnMachineType", "storeNodeType"), ("gcp",)),
    **dict.fromkeys(("dispatcherMinReplicas", "dispatcherMaxReplicas", "alarmActionGroupId", "turnVmSize",
                     "turnSshPublicKey", "aciCells", "storeSku"), ("azure",)),
    **dict.fromkeys(("botCpu", "botMemory"), ("aws", "azure")),
    "accountQuotas": ("aws", "gcp"),
}
# Keys the stacks once read and why they stopped, said in place of "no stack key".
RETIRED = {
    "fargateVcpuQuotaRequest": (
        "the stack files no Service Quotas request (the provider's resource fails `up` once the account holds "
        "more or a request is open, and re-files on refresh): `pulumi config rm fargateVcpuQuotaRequest`, and ask "
        "once with the `aws service-quotas request-service-quota-increase` command the ceiling's warning names "
        "(docs/operations.md, \"Your ceiling and how to raise it\")"),
}
CLOUD_PREFIXES = {"azure": ("azure",), "k8s": ("k8s",)}  # azureVnetCidr, k8sBotCpu, …
PROVIDER_CLOUDS = {"aws": "aws", "gcp": "gcp", "azure-native": "azure", "kubernetes": "k8s"}
_NAMESPACE_LINE = re.compile(r"""__config__ = pulumi\.Config\(['"]([\w-]+)['"]\)""")
_KEY_READ = re.compile(r"""__config__\.get\w*\(['"](\w+)['"]""")


@cache
def known() -> frozenset[str]:
    """Every key of the project's namespace the program reads (Pulumi.yaml declares every key of
    stacks/config/key_table.py: tests/infra/config/test_stack_schema.py holds it to that)."""
    declared = project_config(PROJECT_FILE)
    own = {key.split(":", 1)[1] if key.startswith(NAMESPACE + ":") else key for key in declared if
           ":" not in key or key.startswith(NAMESPACE + ":")}
    return frozenset(own | set(DEFAULTS))


@cache
def provider_keys() -> dict[str, frozenset[str]]:
    """Each installed provider SDK's namespace and the keys it reads (pulumi_kubernetes ships no
    config/vars.py: its namespace is not listed, so none of its keys is refused)."""
    found: dict[str, frozenset[str]] = {}
    for package in PROVIDER_PACKAGES:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / "config" / "vars.py"
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            if namespace := _NAMESPACE_LINE.search(text):
                found[namespace.group(1)] = frozenset(_KEY_READ.findall(text))
    return found


def _other_namespace(full: str) -> str | None:
    """A key of another namespace that no provider reads, with the key it probably meant."""
    namespace, name = full.split(":", 1)
    providers = provider_keys()
    if namespace in providers:
        if name in providers[namespace]:
            return None
        meant = nearest(name, providers[namespace])
        return f"{full} is no {namespace} provider key" + (f": did you mean {namespace}:{meant}?" if meant else "")
    # A slip is an edit or two from a namespace here (one for a short one: `awz`), and no other Pulumi
    # package's own: a ratio took `aws-native:region` for azure-native's and `docker:host` for docker-build's.
    if namespace == "pulumi" or namespace in OTHER_PACKAGES:
        return None  # the CLI's own namespace (`pulumi:tags`), or another package's config
    close = min(sorted([*providers, NAMESPACE]), key=lambda known: edits(namespace, known))
    if edits(namespace, close) > (1 if len(close) <= 4 else 2):
        return None  # another tool's namespace (`mycompany:team`), not a slip of a known one
    return f"{full} is no stack key: did you mean {close}:{name}?"


def unknown(keys: Iterable[str], read: Iterable[str] = (), *, misspelt_only: bool = False) -> list[str]:
    """One line per key that no one reads, with the key it probably meant: of the namespace, or of a
    provider's (`aws:regoin`). With `misspelt_only` (a load that stopped early, before reading every
    key), only keys a letter or two from a known one."""
    names = known() | frozenset(read)
    lines = []
    for full in sorted(keys):
        if ":" not in full:
            lines.append(_bare(full, names))
            continue
        if not full.startswith(NAMESPACE + ":"):
            if (line := _other_namespace(full)) and (not misspelt_only or "did you mean" in line):
                lines.append(line)
            continue
        if not full.startswith(NAMESPACE + ":") or (name := full.split(":", 1)[1]) in names:
            continue
        if name in RETIRED:
            lines.append(f"{full} is no stack key: {RETIRED[name]}")
            continue
        close = nearest(name, names) or _spelt_as_variable(name, names)
        if misspelt_only and close is None:
            continue
        meant = close or next(iter(difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)),
                                             None)
        hint = f": did you mean {meant}?" if meant else " (docs/pulumi.md lists the keys)"
        lines.append(f"{full} is no stack key{hint}")
    return lines


def _spelt_as_variable(name: str, names: Iterable[str]) -> str | None:
    """The key a dispatcher variable's spelling stands for (MAX_CONCURRENT_SESSIONS: maxConcurrentSessions),
    letters alike but for case and underscores."""
    plain = name.replace("_", "").lower()
    return next((key for key in sorted(names) if key.lower() == plain), None)


def _bare(key: str, names: frozenset[str]) -> str:
    """A stack file's key without a namespace (`cloud: aws`): the CLI takes keys as namespace:name, and
    the offline tools would read nothing under it; named with the namespace it likely meant."""
    providers = [namespace for namespace, keys in sorted(provider_keys().items()) if key in keys]
    meant = None if key not in names and providers else (
        key if key in names else nearest(key, names) or _spelt_as_variable(key, names))
    full = f"{NAMESPACE}:{meant}" if meant else (f"{providers[0]}:{key}" if providers else None)
    return (f"{key} is no stack key: a stack file's keys name their namespace: did you mean {full}?" if full else
            f"{key} is no stack key: a stack file's keys name their namespace ({NAMESPACE}:<key>, aws:region; "
            "docs/pulumi.md lists the keys)")


def clouds_of(full: str) -> tuple[str, ...]:
    """The clouds whose program reads a key (full name); () when any cloud's may."""
    namespace, name = full.split(":", 1)
    if namespace != NAMESPACE:
        return (PROVIDER_CLOUDS[namespace],) if namespace in PROVIDER_CLOUDS else ()
    if name in CLOUD_KEYS:
        return CLOUD_KEYS[name]
    return next((clouds for prefix, clouds in CLOUD_PREFIXES.items() if re.match(rf"{prefix}[A-Z]", name)), ())


@cache
def project_defaults() -> dict[str, str]:
    """What `pulumi up` hands the program for each key Pulumi.yaml declares a default of and the stack
    leaves unset: a scalar as Go's `%v` writes it, a list or map as JSON."""
    declared = project_config(PROJECT_FILE)

    def handed(default: object) -> str:
        if isinstance(default, bool):
            return "true" if default else "false"
        return json.dumps(default) if isinstance(default, list | dict) else str(default)

    return {f"{NAMESPACE}:{key}": handed(spec["default"]) for key, spec in declared.items()
            if isinstance(spec, dict) and "default" in spec and ":" not in key}


def of_another_cloud(given: Mapping[str, str], cloud: str) -> list[str]:
    """One line per key of another cloud's (`gcp:project`, `gcpZone`, `k8sBotCpu` in an AWS stack) that
    the stack sets: every cloud's defaults reach the program too (Pulumi.yaml's), and say nothing."""
    lines = []
    defaults = project_defaults()
    for full in sorted(given):
        if full in defaults and str(given[full]) == defaults[full]:
            continue
        if unknown([full]):
            continue  # a key no one reads is refused as such, with the key it probably meant: once
        if ":" in full and (clouds := clouds_of(full)) and cloud not in clouds:
            named = full if not full.startswith(NAMESPACE + ":") else full.split(":", 1)[1]
            lines.append(f"{full} is a key of {' and '.join(clouds)} stacks, and this stack's cloud is {cloud}: "
                         f"nothing reads it here (pulumi config rm {named}: it belongs in a {' or '.join(clouds)} "
                         "stack's file)")
    return lines
