"""The recording policy and where recordings go, from the environment.

`RECORDING` is `off` (the default, locally and in the cloud: recording a person is the operator's
decision, never a surprise) or `on`. `RECORDING_DESTINATION` is a folder (locally; default
`recordings` beside the dispatcher), `s3://bucket/prefix` (S3, or an S3-compatible store through
the standard `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`), `gs://bucket/prefix` (Google Cloud Storage)
or an Azure Blob container's URL (dispatcher/artifacts/azure_store.py). A `POST /start` may turn
its own session's recording off, never on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from botchannel.recording import MIN_PART_BYTES
from dispatcher.settings import SettingsError, float_setting

POLICIES = ("off", "on")
MAX_PART_URL_SECONDS = 3600.0  # a part is put within seconds of its URL: one that leaks is not good for long
MAX_URL_SECONDS = 7 * 24 * 3600.0  # S3's longest pre-signed URL


@dataclass(frozen=True)
class ArtifactSettings:
    policy: str = "off"
    destination: str = "recordings"
    part_url_seconds: float = 300.0  # a part's upload URL lives this long
    download_url_seconds: float = 300.0  # an artifact's download URL lives this long
    checkpoint_seconds: float = 20.0  # the bot uploads the part still filling this often: a crash loses at most this
    end_grace_seconds: float = 60.0  # a bot's channel gone without its `ended`: how long it has to dial again
    part_bytes: int = MIN_PART_BYTES

    @property
    def on(self) -> bool:
        return self.policy == "on"

    @property
    def s3(self) -> bool:
        return self.destination.startswith("s3://")

    @property
    def gcs(self) -> bool:
        return self.destination.startswith("gs://")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ArtifactSettings:
        policy = env.get("RECORDING", "").strip().lower() or cls.policy
        if policy not in POLICIES:
            raise SettingsError(f"RECORDING={policy!r}: use one of {', '.join(POLICIES)}")
        destination = env.get("RECORDING_DESTINATION", "").strip() or cls.destination
        if "://" in destination and not destination.startswith(("s3://", "gs://", "https://", "http://")):
            raise SettingsError(f"RECORDING_DESTINATION={destination!r}: a folder, s3://bucket/prefix, "
                                "gs://bucket/prefix, or https://<account>.blob.core.windows.net/<container>/<prefix>")
        if destination.startswith("gs://") and not destination.removeprefix("gs://").split("/", 1)[0]:
            raise SettingsError("RECORDING_DESTINATION=gs:// needs a bucket: gs://bucket/prefix")
        if destination.startswith("s3://") and not destination.removeprefix("s3://").split("/", 1)[0]:
            raise SettingsError("RECORDING_DESTINATION=s3:// needs a bucket: s3://bucket/prefix")
        return cls(
            policy=policy,
            destination=destination,
            part_url_seconds=_at_most(env, "RECORDING_PART_URL_SECONDS", cls.part_url_seconds, 30.0,
                                      MAX_PART_URL_SECONDS),
            download_url_seconds=_at_most(env, "RECORDING_DOWNLOAD_URL_SECONDS", cls.download_url_seconds, 10.0,
                                          MAX_URL_SECONDS),
            checkpoint_seconds=min(600.0, float_setting(env, "RECORDING_CHECKPOINT_SECONDS", cls.checkpoint_seconds,
                                                        minimum=1.0)),
            end_grace_seconds=float_setting(env, "RECORDING_END_GRACE_SECONDS", cls.end_grace_seconds, minimum=0.0),
        )


def _at_most(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    value = float_setting(env, name, default, minimum=minimum)
    if value > maximum:
        raise SettingsError(f"{name}={value:g} must be at most {maximum:g}: a URL that leaks opens its object "
                            "until it expires (and S3 refuses pre-signed URLs of over a week)")
    return value
