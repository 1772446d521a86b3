"""The recording policy and where recordings go, from the environment.

`RECORDING` (the audio) and `RECORDING_TRANSCRIPT` (default: as `RECORDING`) are `off` (the default,
locally and in the cloud: recording a person is the operator's decision, never a surprise), `on` or
`consent` (the bot host plays `RECORDING_ANNOUNCEMENT` to the caller first). `RECORDING_RULES`
lowers them per API key name and per release, and `RECORDING_RETENTION_DAYS` bounds how long a
session is kept (rules.py is the one reading of both). `RECORDING_REQUIRED` refuses a session whose
recording cannot be kept instead of running it unrecorded. `RECORDING_DESTINATION` is a folder
(locally; default `recordings` beside the dispatcher), `s3://bucket/prefix` (S3, or an
S3-compatible store through the standard `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`), `gs://bucket/prefix`
(Google Cloud Storage) or an Azure Blob container's URL (dispatcher/artifacts/azure_store.py). A `POST /start`
may lower its own session's policy, never raise it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from botchannel.recording import MIN_PART_BYTES
from dispatcher.artifacts.rules import Keeping, RecordingRules, RulesError, parse_rules
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_bool, setting_choice, setting_float, setting_int, setting_text


@dataclass(frozen=True)
class ArtifactSettings:
    policy: str = "off"  # the audio's, before the rules
    transcript: str | None = None  # None: as `policy`
    destination: str = "recordings"
    part_url_seconds: float = 300.0  # a part's upload URL lives this long
    download_url_seconds: float = 300.0  # an artifact's download URL lives this long
    checkpoint_seconds: float = 20.0  # the bot uploads the part still filling this often: a crash loses at most this
    end_grace_seconds: float = 60.0  # a bot's channel gone without its `ended`: how long it has to dial again
    part_bytes: int = MIN_PART_BYTES
    retention_days: int = 0  # 0: kept until erased
    rules_text: str = ""
    required: bool = False  # a session whose recording cannot be kept is refused (503), not run unrecorded
    rules: RecordingRules = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        default = Keeping(audio=self.policy, transcript=self.transcript or self.policy, days=self.retention_days)
        try:
            rules = parse_rules(self.rules_text, default)
        except RulesError as exc:
            raise SettingsError(str(exc)) from None
        object.__setattr__(self, "rules", rules)

    @property
    def on(self) -> bool:
        """Whether any session may keep anything (the rules only ever lower the defaults)."""
        return self.rules.default.audio != "off" or self.rules.default.transcript != "off"

    @property
    def asks_consent(self) -> bool:
        """Whether any session may be announced (the default or a rule says `consent`)."""
        default = self.rules.default
        return "consent" in (default.audio, default.transcript) or any(
            "consent" in (rule.audio, rule.transcript) for rule in self.rules.rules)

    @property
    def s3(self) -> bool:
        return self.destination.startswith("s3://")

    @property
    def gcs(self) -> bool:
        return self.destination.startswith("gs://")

    def check_key_names(self, names: set[str]) -> None:
        """A rule for a key name no API key has is a mistake that would silently keep more: refused."""
        unknown = sorted(self.rules.named("key") - names)
        if unknown:
            have = ", ".join(sorted(names)) or "none (DISPATCHER_API_KEYS has no name:key entries)"
            raise SettingsError(f"RECORDING_RULES names the API key {', '.join(unknown)}, which DISPATCHER_API_KEYS "
                                f"does not have: fix the rule or name the key (name:key); the named keys are {have}")

    def unknown_releases(self, names: set[str]) -> list[str]:
        """The releases the rules name that the catalogue does not have (now): a warning, releases come and go."""
        return sorted(self.rules.named("release") - names)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ArtifactSettings:
        destination = checked_destination("RECORDING_DESTINATION",
                                          setting_text(env, "RECORDING_DESTINATION") or cls.destination)
        return cls(
            policy=setting_choice(env, "RECORDING"),
            transcript=setting_choice(env, "RECORDING_TRANSCRIPT") or None,  # unset: as RECORDING
            destination=destination,
            retention_days=setting_int(env, "RECORDING_RETENTION_DAYS"),
            rules_text=setting_text(env, "RECORDING_RULES"),
            required=setting_bool(env, "RECORDING_REQUIRED"),
            # At most an hour for a part (put within seconds of its URL) and a week (S3's longest pre-signed
            # URL) for a download: a URL that leaks opens its object until it expires.
            part_url_seconds=setting_float(env, "RECORDING_PART_URL_SECONDS"),
            download_url_seconds=setting_float(env, "RECORDING_DOWNLOAD_URL_SECONDS"),
            checkpoint_seconds=min(600.0, setting_float(env, "RECORDING_CHECKPOINT_SECONDS")),
            end_grace_seconds=setting_float(env, "RECORDING_END_GRACE_SECONDS"),
        )



def checked_destination(name: str, destination: str) -> str:
    """A store's destination as a setting gives it (a folder, `s3://`, `gs://` or an Azure container's
    URL), or SettingsError naming `name` and the shapes it takes."""
    if "://" in destination and not destination.startswith(("s3://", "gs://", "https://", "http://")):
        raise SettingsError(f"{name}={destination!r}: a folder, s3://bucket/prefix, "
                            "gs://bucket/prefix, or https://<account>.blob.core.windows.net/<container>/<prefix>")
    if destination.startswith("gs://") and not destination.removeprefix("gs://").split("/", 1)[0]:
        raise SettingsError(f"{name}=gs:// needs a bucket: gs://bucket/prefix")
    if destination.startswith("s3://") and not destination.removeprefix("s3://").split("/", 1)[0]:
        raise SettingsError(f"{name}=s3:// needs a bucket: s3://bucket/prefix")
    return destination
