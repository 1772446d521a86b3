"""The artifacts' object graph, built once from the environment (dispatcher/wiring.py calls it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dispatcher.artifacts.azure_sas import is_azure_destination
from dispatcher.artifacts.azure_store import AzureBlobStore
from dispatcher.artifacts.ending import MachineRunning, RecordingEnds
from dispatcher.artifacts.gcs_store import GcsStore
from dispatcher.artifacts.gcs_store import split_destination as split_gcs
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.orphans import OrphanSweep
from dispatcher.artifacts.reading import ArtifactReader
from dispatcher.artifacts.recordings import Ask, AskOwner, Cost, Events, Note, SessionRecordings
from dispatcher.artifacts.s3_store import S3Store, split_destination
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import SignedPaths
from dispatcher.artifacts.store import ArtifactStore
from dispatcher.channel.bots import BotChannels
from dispatcher.settings import SettingsError

log = logging.getLogger("dispatcher.artifacts")


@dataclass
class Artifacts:
    settings: ArtifactSettings
    recordings: SessionRecordings
    reader: ArtifactReader
    ends: RecordingEnds
    local: LocalFolderStore | None  # the folder store, whose signed paths this dispatcher serves
    orphans: OrphanSweep
    _sweeping: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        if self.settings.on:
            await self.recordings.check()
            self._sweeping = asyncio.create_task(self.orphans.run(), name="recording-orphans")

    async def aclose(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
        await self.ends.aclose()
        await self.recordings.aclose()
        if isinstance(self.recordings.store, GcsStore | AzureBlobStore):  # their own connection pools, once
            await self.recordings.store.aclose()  # the last call is done


def check_announcement(env: Mapping[str, str]) -> None:
    """The local bots' consent announcement (RECORDING_ANNOUNCEMENT, from the bot file's folder) is
    audio: a file that is not is refused at start, not found at the first call (in the cloud the
    bot's `--check` in the image build does it)."""
    from bot.recording.announcement import announcement_problem
    from bot.user_bot import bot_file_path

    problem = announcement_problem(env, bot_file_path(env).parent)
    if problem is not None:
        raise SettingsError(problem)


def build_store(settings: ArtifactSettings, env: Mapping[str, str]) -> ArtifactStore:
    if settings.s3:
        bucket, prefix = split_destination(settings.destination)
        return S3Store(bucket, prefix, env)
    if settings.gcs:
        return GcsStore(*split_gcs(settings.destination), env)
    if is_azure_destination(settings.destination):
        return AzureBlobStore(settings.destination, env)
    # The folder's signed paths are this process's: a key of its own, never given to a bot.
    return LocalFolderStore(Path(settings.destination), SignedPaths(secrets.token_bytes(32)))


def build_artifacts(env: Mapping[str, str], *, channels: BotChannels, note: Note, events: Events, region: str,
                    provider: str, running: MachineRunning, max_session_seconds: float,
                    cost: Cost | None = None, key_names: set[str] | None = None,
                    releases: set[str] | None = None, runtime_keys: bool = False, replica_id: str = "",
                    ask: Ask | None = None, ask_owner: AskOwner | None = None) -> Artifacts:
    """`key_names`: the API keys' names (a rule naming another is refused, unless `runtime_keys`: an
    admin may make a key of that name at runtime, before or after this start, so it is a warning);
    `releases`: the catalogue's (a rule naming another is a warning, shown in status: releases come and go);
    `ask`: another replica's answer, to take a recording over from it (recordings.py `here`);
    `ask_owner`: the answer of the replica a session's bot dialled, given its recording at a drain."""
    settings = ArtifactSettings.from_env(env)
    if key_names is not None and runtime_keys and (unnamed := sorted(settings.rules.named("key") - key_names)):
        log.warning("RECORDING_RULES names the API key(s) %s, which DISPATCHER_API_KEYS does not have: their rule "
                    "applies to the runtime keys of that name (`voicefleet keys list`)", ", ".join(unnamed))
    elif key_names is not None:
        settings.check_key_names(key_names)
    if provider == "local" and settings.asks_consent:
        check_announcement(env)
    store = build_store(settings, env)
    recordings = SessionRecordings(settings, store, note=note, events=events, region=region, provider=provider,
                                   max_session_seconds=max_session_seconds, cost=cost, replica_id=replica_id,
                                   ask=ask, ask_owner=ask_owner)
    if releases is not None and (unknown := settings.unknown_releases(releases)):
        recordings.unknown_releases = unknown
        log.warning("RECORDING_RULES names the release(s) %s, which the catalogue does not have (yet): their rule "
                    "applies once they exist", ", ".join(unknown))
    ends = RecordingEnds(recordings, channels, running, settings.end_grace_seconds)
    ends.follow()
    # An upload begun longer ago than the longest session (and the grace its end may take) is no
    # replica's any more.
    orphans = OrphanSweep(recordings, max_session_seconds + settings.end_grace_seconds + 120)
    reader = ArtifactReader(store, settings.download_url_seconds, retention_days=settings.rules.retention_days())
    return Artifacts(settings, recordings, reader, ends,
                     store if isinstance(store, LocalFolderStore) else None, orphans)
