"""Reading Pulumi config with errors that name the full key (`voicefleet:botCpu …`).

`DEFAULTS` holds every default in one place; Pulumi.yaml declares the same values for the CLI
(tests/infra/config/test_settings.py checks that they agree).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pulumi

from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES, derived, derived_keys
from stacks.config.masked import is_masked

NAMESPACE = "voicefleet"

# The defaults, in one place (mirrored by Pulumi.yaml `config:`).
DEFAULTS: dict[str, Any] = {
    "size": "",  # "" = none: the defaults (stacks/config/derived.py)
    "profile": "dev",  # the dispatcher's VOICEFLEET_PROFILE names (stacks/config/derived.py)
    "environment": "dev",
    "protect": False,
    "maxConcurrentSessions": 10,
    "maxSessionSeconds": 1800,
    "expectedCallMinutes": 4,  # a session's expected length: the launch rate's ceiling (stacks/config/ceiling.py)
    "accountQuotas": False,  # AWS and GCP, true: a preview reads the vCPU quota (stacks/config/ceiling_notes.py)
    "platforms": ["linux/amd64"],
    "buildOnPreview": True,
    "imageRetentionCount": 20,
    "drain": False,  # true: the dispatcher scaled to zero before `python -m stacks.drain` and a destroy
    "dispatcherZoneId": "",  # "" = the operator writes dispatcherDomain's DNS record
    "sourceRevision": "",  # "" = unset (env VOICEFLEET_SOURCE_REVISION, else no revision tag)
    "botProject": "examples/parrot",  # the bot image's project folder (stacks/config/bot.py)
    "botImageBudgetMb": 0,  # 0 = none: the plan states the predicted size and passes; set, it refuses above it
    # Releases (stacks/config/releases.py): "" = each release named from what it launches
    "release": "",
    "releasesKept": 3,
    "canaryPercent": 10,  # a new release's share of new sessions when the dispatcher first sees it
    # Several regions (stacks/config/regions.py): "" = a single region
    "region": "",
    "regionSpillBudgetMs": 100,  # the dispatcher's REGION_SPILL_BUDGET_MS
    "regionHoldForNeighbours": False,  # the dispatcher's REGION_HOLD_FOR_NEIGHBOURS
    "dashboardEnabled": False,  # the dispatcher's DASHBOARD_ENABLED (stacks/config/observability.py)
    "webhookUrl": "",  # "" = no lifecycle webhooks (stacks/config/observability.py)
    # Calls placed through Twilio (stacks/config/calling_out.py): "" = the dispatcher's own default
    "phonePublicUrl": "",
    "twilioAccountSid": "",
    "twilioApiKeySid": "",
    "twilioRegion": "",  # "" = Twilio's default, US1
    "twilioEdge": "",
    "twilioVoicemail": "",
    "twilioCallsPerSecond": "",
    "twilioCallMaxWaitSeconds": "",
    # Calls placed through Telnyx (stacks/config/calling_out_telnyx.py): "" = the dispatcher's own default
    "telnyxAccountSid": "",
    "telnyxApplicationSid": "",
    "telnyxVoicemail": "",
    "telnyxCallsPerSecond": "",
    "telnyxCallMaxWaitSeconds": "",
    # The Plivo account the dispatcher calls Plivo's API as (stacks/config/plivo_account.py): "" = none
    "plivoAuthId": "",
    # Where and how long calls may be transferred (stacks/config/phone_transfers.py): 0 = the dispatcher's own
    "phoneTransferTimeLimitSeconds": 0,
    # The number a Daily transfer's person sees (stacks/config/phone.py): "" = one Daily picks
    "dailyDialoutCallerId": "",
    "otelExporterOtlpEndpoint": "",  # "" = no traces
    # The bot control channel (stacks/config/channel.py): on with `profile: prod`, or with botChannelToken set
    "botChannel": False,
    # The secrets the stack makes (stacks/config/made_secrets.py): their generation, and a roll's other one
    "secretsRotation": 0,
    "secretsRoll": "none",
    # The dispatcher's feature switches (stacks/config/switches.py): false = its own default, off
    "dailyAllowDialout": False,
    "twilioSignedStreams": False,
    "recordingRequired": False,
    "releaseEvalRequired": False,
    # The front door stack (stacks/config/front_door.py)
    "role": "region",
    "frontDoorDomain": "",
    "frontDoorZone": "",
    # Recording (stacks/config/recording.py): off = no bucket
    "recording": "off",
    "recordingTranscript": "off",
    "recordingRules": "",
    "recordingRetentionDays": 0,  # 0 = kept until erased
    "recordingHold": False,
    "recordingKmsKey": "",  # "" = the cloud's own keys
    "recordingDeleteOnDestroy": False,
    "recordingRemoveStore": False,  # true: confirms an `up` with recording off that takes the store out of the stack
    "usageFiles": "off",  # recordings: the dispatcher's daily usage file beside the recordings
    "recordingDestination": "",  # k8s: s3://bucket/prefix of an S3-compatible store
    "recordingEndpoint": "",  # k8s: that store's URL
    # AWS
    "vpcCidr": "10.40.0.0/16",
    "azCount": 2,
    "botCpu": 512,
    "botMemory": 1024,
    "dispatcherCpu": 256,
    "dispatcherMemory": 512,
    "dispatcherCount": 1,
    "storeEcpuPerSecond": 0,  # 0 = sized from maxConcurrentSessions (stacks/config/store_capacity.py)
    "storeDataGb": 1,  # the store's data cap (stacks/config/store_ceiling.py)
    "ecsCapacityProviders": "FARGATE",
    "albIdleTimeoutSeconds": 60,
    "keepAliveSeconds": 65,
    "certificateArn": "",
    "dispatcherDomain": "",  # the certificate's name; bots dial wss://<it>/bots/channel
    "allowPlainHttp": False,
    "allowedCidrs": ["0.0.0.0/0"],
    "containerInsights": False,
    "logRetentionDays": 14,
    "secretRecoveryDays": 7,
    "alarmTopicArn": "",  # "" = alarms notify nobody (stacks/config/alarms.py)
    # TURN relay (stacks/config/turn.py)
    "turn": "none",
    "turnUrls": "",
    "turnDomain": "",
    "turnInstanceType": "t3.small",
    "turnMachineType": "e2-small",
    "turnVmSize": "Standard_B2s",  # Azure
    "turnSshPublicKey": "",  # Azure, required with turn: managed (a Linux VM needs a credential)
    "turnRelayPorts": "49152-65535",
    "turnTotalQuota": 1000,
    "turnCredentialsPerKey": 0,  # derived from turnTotalQuota (stacks/config/turn.py)
    # Warm reserve sizing (stacks/config/reserve.py; the dispatcher's defaults)
    "reserveMinIdle": 1,
    "reserveMaxIdle": 10,
    "reserveBuffer": "0.1",
    "reserveBurst": "1",
    "reserveMaxIdleSeconds": 900,
    "reserveScaledownSeconds": 60,
    "reserveRateSample": 10,
    "reserveColdStartSeconds": "",
    "reserveSchedule": "",
    # AWS cells
    "ecsCells": [],  # none: the stack's own account alone runs the bots (stacks/config/ecs_cells.py)
    "ecsCellBotTaskRoleArns": [],  # the cells' bots' task roles, with the bot channel (stacks/config/ecs_cells.py)
    # GCP
    "gcpZone": "",
    "subnetCidr": "10.50.0.0/20",
    "botRuntime": "gce",  # or "cloudrun": a Cloud Run job execution per session (stacks/gcp/bot_job.py)
    "cloudRunExecutionQuota": 1000,  # running job executions per project and region (stacks/config/cloud_run.py)
    "cloudRunCells": [],  # none: the stack's own project alone runs the executions (stacks/config/cloud_run.py)
    "gceCells": [],  # none: the stack's own project alone runs the VMs (stacks/config/gce_cells.py)
    "botMachineType": "e2-small",
    "storeNodeType": "",  # "" = the environment's (stacks/config/store_ceiling_notes.py)
    "botDiskGb": 10,
    "dispatcherMinInstances": 0,
    "dispatcherMaxInstances": 3,
    "alarmNotificationChannels": [],  # none: alert policies notify nobody (stacks/config/alarms.py)
    "alertPolicies": False,  # true once the log-based metrics are 10 min old (stacks/gcp/observability.py)
    # Azure (stacks/config/azure.py)
    "aciCells": [],  # none: the stack's own resource group alone runs the bots (stacks/config/aci_cells.py)
    "azureVnetCidr": "10.60.0.0/16",
    "dispatcherMinReplicas": 1,
    "dispatcherMaxReplicas": 1,
    "storeSku": "",  # "" = the environment's (stacks/config/store_ceiling_notes.py)
    "azureLogRetentionDays": 30,
    "alarmActionGroupId": "",  # "" = alerts notify nobody
    "azureKeyVaultAllowedIps": [],  # none: Key Vault answers its private endpoint only (stacks/azure/secrets.py)
    "azureKeyVaultRetentionDays": 90,  # fixed when the vault is created (stacks/azure/secrets.py)
    "azureKeyVaultPurgeProtection": False,  # once on, never off again (stacks/azure/secrets.py)
    # Kubernetes (stacks/config/k8s.py): "" = unset
    "k8sContext": "",  # the kubeconfig's current context
    "k8sClusterIdentifier": "",  # pulumi-kubernetes' own guess from the kubeconfig's active cluster
    "k8sDispatcherNamespace": "voicefleet",
    "k8sBotNamespace": "voicefleet-bots",
    "k8sIngressNamespace": "ingress-nginx",
    "k8sIngressClass": "nginx",
    "k8sDispatcherHost": "",
    "k8sTlsSecret": "",  # the Ingress controller's default certificate
    "k8sCells": [],  # none: the stack's own cluster alone runs the bots (stacks/config/k8s_cells.py)
    "k8sBotSecret": "",  # none: the stack writes the bots' Secret from botSecrets (stacks/k8s/bot_secret.py)
    "k8sDispatcherImage": "",
    "k8sBotImage": "",
    "k8sRegistry": "",  # none: the images are named by digest (stacks/config/k8s_registry.py)
    "k8sRegistryUsername": "",  # none: the deployer's Docker login pushes, the nodes' own rights pull
    "k8sRegistryPullUsername": "",  # none: the pods pull with k8sRegistryUsername's credential, if any
    "k8sDispatcherReplicas": 2,
    "k8sDispatcherCpu": "500m",
    "k8sBotCpu": "1",
    "k8sBotMemory": "1Gi",
    "k8sRuntimeClass": "",  # the nodes' default runtime
    "k8sPodOverheadCpu": "0",  # the runtime class's Pod Overhead, none by default (stacks/config/k8s.py)
    "k8sPodOverheadMemory": "0",
    "k8sAllocatableCpu": "",  # not stated: the ceiling says what the bots need of it (stacks/config/ceiling.py)
    "k8sBotEgressExcept": [],  # none beyond the private and reserved ranges (stacks/k8s/network_policies.py)
    "k8sIngressSources": [],  # only k8sIngressNamespace's pods (stacks/k8s/network_policies.py)
    "k8sDnsAddresses": [],  # the cluster's DNS pods (and NodeLocal DNSCache's) only
    "k8sMode": "pods",  # bare pods per session; `agent-sandbox`: claims on the stack's SandboxWarmPool
    "k8sAgentSandbox": "adopt",  # the cluster's own agent-sandbox; `install`: the stack's pinned release
    "k8sSandboxController": "agent-sandbox-system/agent-sandbox-controller",  # the release's own
    "k8sDeployer": "",  # required in agent-sandbox mode
    "k8sChannelTls": "stack",  # the stack's CA signs the channel's certificate; istio-ambient, cilium: a mesh's (ws://)
    "k8sStore": "external",  # k8sStoreUrl's store; `in-cluster`: the stack runs Valkey (stacks/k8s/store.py)
    "k8sStoreStorage": "1Gi",  # the in-cluster store's volume
    # The shared GPU model service (stacks/config/k8s_model.py): off while k8sModelImage is "".
    "k8sModelImage": "",
    "k8sModelNamespace": "voicefleet-model",
    "k8sModelReplicas": 1,
    "k8sModelGpus": 1,
    "k8sModelCpu": "4",
    "k8sModelMemory": "32Gi",
    "k8sModelStreams": 64,  # the calls one H100 or H200 batches in real time (docs/converged.md)
    "k8sModelPort": 8998,  # moshi.server's own
}


class SettingsError(pulumi.RunError):
    """Bad stack configuration. A RunError, so Pulumi prints the message without a traceback."""


class Reader:
    """Reads one namespace; every error names the full key."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.config = pulumi.Config(namespace)
        self.read: set[str] = set()  # every key asked for: a set key outside it is read by nothing

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def command_key(self, name: str) -> str:
        """The key as `pulumi config set` takes it: a bare name is the project's own namespace's, so another
        namespace's key (`aws:region`) is written in full."""
        return name if self.namespace == NAMESPACE else self.key(name)

    def fail(self, name: str, problem: str) -> SettingsError:
        return SettingsError(f"Invalid stack configuration: {self.key(name)} {problem}")

    def default(self, name: str) -> Any:
        """An unset key's value: what the stack's cloud, size or profile derives, else DEFAULTS."""
        if self.namespace == NAMESPACE and name in derived_keys():
            size = self.string("size", choices=SIZE_NAMES) if self.raw("size") else None
            profile = self.string("profile", choices=PROFILE_NAMES)
            if (found := derived(size, profile, cloud=self.raw("cloud") or "").get(name)) is not None:
                return found[0]
        return DEFAULTS[name]

    def raw(self, name: str) -> str | None:
        self.read.add(name)
        value = self.config.get(name)
        return value.strip() if value is not None and value.strip() else None

    def string(self, name: str, *, choices: tuple[str, ...] = (), pattern: re.Pattern[str] | None = None,
               required: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            if required or name not in DEFAULTS:
                raise self.fail(name, f"is required (pulumi config set {self.command_key(name)} …)")
            value = str(self.default(name))
        if choices and value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)} (got {value!r})")
        if pattern is not None and not pattern.match(value):
            raise self.fail(name, f"must match {pattern.pattern} (got {value!r})")
        return value

    def optional(self, name: str) -> str | None:
        return self.raw(name)

    def plain(self, name: str) -> str | None:
        """A key the stack writes in plain text (the dispatcher's environment, the state, the preview's diff):
        one set with --secret is refused rather than decrypted into it, as a secret key stored plain is."""
        value = self.raw(name)
        if value is not None and pulumi.runtime.is_config_secret(self.key(name)):
            raise self.fail(name, "is set as a secret, but the stack passes it on in plain text (it is no credential):"
                                  f" set it without --secret: pulumi config set {self.command_key(name)} …")
        return value

    def structured(self, name: str) -> Any:
        """A key holding an object or list (`pulumi config set --path tags.team voice`), None when unset;
        read through here so the check for keys nobody reads (stacks/config/stack_keys.py) counts it."""
        self.read.add(name)
        return self.config.get_object(name)

    def integer(self, name: str, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.raw(name)
        if raw is None:
            return int(self.default(name))
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(name, f"must be a whole number (got {raw!r})") from None
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum} (got {value})")
        if maximum is not None and value > maximum:
            raise self.fail(name, f"must be at most {maximum} (got {value})")
        return value

    def boolean(self, name: str) -> bool:
        raw = self.raw(name)
        if raw is None:
            default = self.default(name)
            return default == "true" if isinstance(default, str) else bool(default)
        if raw.lower() not in ("true", "false"):
            raise self.fail(name, f"must be true or false (got {raw!r})")
        return raw.lower() == "true"

    def string_list(self, name: str) -> tuple[str, ...]:
        raw = self.raw(name)
        if raw is None:
            return tuple(DEFAULTS[name])
        try:
            value = self.config.get_object(name)
        except Exception:  # noqa: BLE001 - pulumi raises its own JSON error type
            value = None
        if value == [] and list(DEFAULTS.get(name, ["?"])) == []:
            return ()  # Pulumi.yaml's own `default: []`, which `pulumi up` hands the program as "[]"
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(name, f"must be a non-empty list of strings (got {raw!r})")
        return tuple(value)

    def secret(
        self, name: str, *, required: bool, check: Callable[[str], None] | None = None
    ) -> pulumi.Output[str] | None:
        """The secret as an Output; `check(text)` runs once its value is known (raising `self.fail`
        there fails the preview, naming the key, without the value ever being plain config)."""
        if self.raw(name) is None:
            if required:
                raise self.fail(name, f"is required: pulumi config set --secret {self.command_key(name)} …")
            return None
        if not pulumi.runtime.is_config_secret(self.key(name)):
            raise self.fail(name, "is stored in plain text: set it with pulumi config set --secret "
                                  f"{self.command_key(name)} …")
        value = self.config.get_secret(name)
        assert value is not None
        if check is not None:
            value.apply(lambda text: self._check_unless_masked(name, text, check))
        return value

    def _check_unless_masked(self, name: str, text: str, check: Callable[[str], None]) -> None:
        """An offline run sees a masked value (stacks/config/masked.py): its length and shape are not
        known there, so the check waits for `pulumi up`, which sees the value, and the run says so."""
        if is_masked(text):
            pulumi.log.info(f"{self.key(name)} is encrypted in the stack file: its length and shape are checked "
                            "by `pulumi up`, where the program reads its value")
            return
        check(text)
