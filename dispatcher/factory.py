"""Build the configured machines provider and rooms service (`MACHINES` picks the provider).

Provider modules are imported lazily so a dispatcher only loads the client library it uses.
What a provider hands the bot is not here but in `dispatcher.machines.bot_environment`, so providers never
import the factory that imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from dispatcher.machines.gpu import gpu_problem
from dispatcher.media.turn import TurnCredentials, TurnSettings
from dispatcher.releases.catalogue import Catalogue
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.store_settings import StoreSettings
from voicefleet_settings.read import setting_choice, setting_text

if TYPE_CHECKING:  # `configuration_problems` (`voicefleet config check`) builds none of them: no store client
    from dispatcher.machines.base import Machines
    from dispatcher.media.rooms import Rooms
    from dispatcher.store.coordination import Coordination


def build_machines(settings: Settings, env: Mapping[str, str], coordination: Coordination) -> Machines:
    if settings.machines == "ecs":
        from dispatcher.machines.ecs.provider import EcsMachines, EcsSettings

        ecs = EcsSettings.from_env(env)
        channel_url = setting_text(env, "BOT_CHANNEL_URL")
        if ecs.cells and channel_url:  # several accounts (ECS_CELLS): launches and the reserve spread over them
            from dispatcher.machines.ecs.cell_reserve import EcsCellWarmMachines

            return EcsCellWarmMachines(ecs, coordination, channel_url=channel_url, transport=settings.transports[0])
        if ecs.cells:  # no channel: cold launches spread over the accounts
            from dispatcher.machines.ecs.cells import EcsCellMachines

            return EcsCellMachines(ecs, coordination)
        if channel_url:  # bots can dial in: a reserve is possible
            from dispatcher.machines.ecs.reserve import EcsWarmMachines

            return EcsWarmMachines(ecs, channel_url=channel_url, transport=settings.transports[0],
                                   coordination=coordination)
        return EcsMachines(ecs, coordination)
    if settings.machines == "gce":
        from dispatcher.machines.gce.provider import GceMachines, GceSettings

        gce = GceSettings.from_env(env)
        channel = setting_text(env, "BOT_CHANNEL_URL")  # bots can dial in (the template tells them where)
        if gce.cells and channel:  # several projects (GCE_CELLS): launches and the reserve spread over them
            from dispatcher.machines.gce.cell_reserve import GceCellWarmMachines
            from dispatcher.reserve.policy import ReserveSettings

            return GceCellWarmMachines(gce, coordination, max_session_seconds=settings.max_session_seconds,
                                       max_idle_seconds=ReserveSettings.from_env(env, "gce").max_idle_seconds)
        if gce.cells:  # no channel: cold launches spread over the projects
            from dispatcher.machines.gce.cells import GceCellMachines

            return GceCellMachines(gce, coordination)
        if channel:
            from dispatcher.machines.gce.reserve import GceWarmMachines
            from dispatcher.reserve.policy import ReserveSettings

            return GceWarmMachines(gce, max_session_seconds=settings.max_session_seconds,
                                   max_idle_seconds=ReserveSettings.from_env(env, "gce").max_idle_seconds,
                                   coordination=coordination)
        return GceMachines(gce, coordination=coordination)
    if settings.machines == "cloudrun":
        from dispatcher.machines.cloudrun.provider import CloudRunMachines, CloudRunSettings

        cloudrun = CloudRunSettings.from_env(env)
        secret = setting_text(env, "BOT_CHANNEL_TOKEN") if setting_text(env, "BOT_CHANNEL_URL") else ""
        if cloudrun.cells and secret:  # several projects (CLOUDRUN_CELLS): launches and the reserve spread over them
            from dispatcher.machines.cloudrun.cell_reserve import CloudRunCellWarmMachines
            from dispatcher.reserve.policy import ReserveSettings

            return CloudRunCellWarmMachines(
                cloudrun, coordination, channel_secret=secret, max_session_seconds=settings.max_session_seconds,
                max_idle_seconds=ReserveSettings.from_env(env, "cloudrun").max_idle_seconds)
        if cloudrun.cells:  # no channel: cold launches spread over the projects
            from dispatcher.machines.cloudrun.cells import CloudRunCellMachines

            return CloudRunCellMachines(cloudrun, coordination)
        if secret:  # bots can dial in: a reserve is possible
            from dispatcher.machines.cloudrun.reserve import CloudRunWarmMachines
            from dispatcher.reserve.policy import ReserveSettings

            return CloudRunWarmMachines(cloudrun, coordination=coordination,
                                        channel_secret=secret,
                                        max_idle_seconds=ReserveSettings.from_env(env, "cloudrun").max_idle_seconds,
                                        max_session_seconds=settings.max_session_seconds)
        return CloudRunMachines(cloudrun, coordination=coordination)
    if settings.machines == "fly":
        from dispatcher.machines.fly.provider import FlyMachines, FlySettings

        if channel_url := setting_text(env, "BOT_CHANNEL_URL"):  # bots can dial in: a reserve is possible
            from dispatcher.machines.fly.frozen import FlyFrozenMachines

            return FlyFrozenMachines.from_env(env, channel_url, coordination, transport=settings.transports[0])
        return FlyMachines(FlySettings.from_env(env), coordination)
    if settings.machines == "cerebrium":
        from dispatcher.machines.cerebrium.provider import CerebriumMachines, CerebriumSettings

        return CerebriumMachines(CerebriumSettings.from_env(env), coordination)
    if settings.machines == "modal":
        from dispatcher.machines.modal.provider import ModalMachines
        from dispatcher.machines.modal.settings import ModalSettings

        if channel_url := setting_text(env, "BOT_CHANNEL_URL"):  # bots can dial in: a reserve is possible
            from dispatcher.machines.modal.reserve import ModalWarmMachines
            from dispatcher.reserve.policy import ReserveSettings

            return ModalWarmMachines(ModalSettings.from_env(env), coordination=coordination, channel_url=channel_url,
                                     max_idle_seconds=ReserveSettings.from_env(env, "modal").max_idle_seconds,
                                     max_session_seconds=settings.max_session_seconds,
                                     transport=settings.transports[0])
        return ModalMachines(ModalSettings.from_env(env), coordination=coordination)
    if settings.machines == "aci":
        from dispatcher.machines.aci.provider import AciMachines
        from dispatcher.machines.aci.settings import AciSettings

        aci = AciSettings.from_env(env)
        channel = setting_text(env, "BOT_CHANNEL_URL")  # bots can dial in: a reserve is possible
        if aci.cells and channel:  # several subscriptions (ACI_CELLS): launches and the reserve spread over them
            from dispatcher.machines.aci.cell_reserve import AciCellWarmMachines

            return AciCellWarmMachines(aci, coordination, env, transport=settings.transports[0])
        if aci.cells:  # no channel: cold launches spread over the subscriptions
            from dispatcher.machines.aci.cells import AciCellMachines

            return AciCellMachines(aci, coordination, env)
        if channel:
            from dispatcher.machines.aci.reserve import AciWarmMachines

            return AciWarmMachines.from_env(env, coordination, transport=settings.transports[0])
        return AciMachines.from_env(env, coordination)
    if settings.machines == "k8s":
        from dispatcher.machines.k8s.provider import K8sMachines
        from dispatcher.machines.k8s.settings import AGENT_SANDBOX

        if setting_choice(env, "K8S_MODE") == AGENT_SANDBOX:  # the pool's controller keeps the warm bots
            from dispatcher.machines.k8s.sandbox import SandboxClaims

            return SandboxClaims.from_env(env)
        channel_url = setting_text(env, "BOT_CHANNEL_URL")
        if setting_text(env, "K8S_CELLS") and channel_url:  # several clusters: launches and the reserve spread
            from dispatcher.machines.k8s.cell_reserve import K8sCellWarmMachines
            from dispatcher.machines.k8s.settings import K8sSettings
            from dispatcher.reserve.policy import ReserveSettings

            return K8sCellWarmMachines(K8sSettings.from_env(env), coordination, channel_url=channel_url,
                                       transport=settings.transports[0],
                                       max_idle_seconds=ReserveSettings.from_env(env, "k8s").max_idle_seconds,
                                       max_session_seconds=settings.max_session_seconds)
        if setting_text(env, "K8S_CELLS"):  # no channel: cold launches spread over the clusters
            from dispatcher.machines.k8s.cells import K8sCellMachines
            from dispatcher.machines.k8s.settings import K8sSettings

            return K8sCellMachines(K8sSettings.from_env(env), coordination)
        if channel_url:  # bots can dial in: a reserve is possible
            from dispatcher.machines.k8s.reserve import K8sWarmMachines
            from dispatcher.reserve.policy import ReserveSettings

            return K8sWarmMachines.from_env(env, transport=settings.transports[0],
                                            max_idle_seconds=ReserveSettings.from_env(env, "k8s").max_idle_seconds,
                                            max_session_seconds=settings.max_session_seconds)
        return K8sMachines.from_env(env)
    from dispatcher.machines.local.provider import LocalSettings
    from dispatcher.machines.local.shared import SharedLocalMachines

    # Each replica's bots are its own processes; another replica's are reached through `coordination`.
    return SharedLocalMachines(LocalSettings.from_env(env), coordination)


def build_coordination(env: Mapping[str, str]) -> Coordination:
    """Chosen once: several replicas on the store that REDIS_URL names, else this one process."""
    from dispatcher.store.local import LocalCoordination
    from dispatcher.store.redis_coordination import RedisCoordination

    settings = StoreSettings.from_env(env)
    return LocalCoordination() if settings is None else RedisCoordination(settings)


def build_rooms(settings: Settings, env: Mapping[str, str]) -> Rooms | None:
    """Daily sessions need rooms, local ones too (TRANSPORTS=webrtc,daily with DAILY_API_KEY: Daily
    dial-in tried locally); a deployment that offers only WebRTC needs no Daily account."""
    if "daily" not in settings.transports:
        return None
    from dispatcher.media.daily import DailyRooms, DailySettings

    return DailyRooms(DailySettings.from_env(env))


def configuration_problems(env: Mapping[str, str]) -> list[str]:
    """Everything wrong with the environment for its mode, at once (each item names its
    variables), so an operator fixes the configuration in one round instead of one per start.

    Checks the shared settings, the provider's and Daily's (cloud), and in local mode the bot's
    service keys, which the local bots inherit: a partial set would fail every session.
    """
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        problems.append(str(exc))
    try:
        machines = setting_choice(env, "MACHINES")
    except SettingsError:  # Settings.from_env has named it: no provider's settings to check
        machines = ""
    checks: list[Callable[[], object]] = []
    if machines == "ecs":
        from dispatcher.machines.ecs.settings import EcsSettings  # the settings alone: no client

        checks += [lambda: EcsSettings.from_env(env), lambda: _cells_store(env)]
    elif machines == "gce":
        from dispatcher.machines.gce.settings import GceSettings  # the settings alone: no client

        checks += [lambda: GceSettings.from_env(env), lambda: _cells_store(env)]
    elif machines == "cloudrun":
        from dispatcher.machines.cloudrun.settings import CloudRunSettings  # the settings alone: no client

        checks += [lambda: CloudRunSettings.from_env(env), lambda: _cells_store(env)]
    elif machines == "fly":
        from dispatcher.machines.fly.provider import FlySettings

        checks.append(lambda: FlySettings.from_env(env))
    elif machines == "cerebrium":
        from dispatcher.machines.cerebrium.provider import CerebriumSettings

        checks.append(lambda: CerebriumSettings.from_env(env))
    elif machines == "modal":
        from dispatcher.machines.modal.settings import ModalSettings, modal_installed

        checks += [lambda: ModalSettings.from_env(env), modal_installed]
    elif machines == "aci":
        from dispatcher.machines.aci.settings import AciSettings

        checks += [lambda: AciSettings.from_env(env), lambda: _cells_store(env)]
    elif machines == "k8s":
        from dispatcher.machines.k8s.settings import K8sSettings

        checks += [lambda: K8sSettings.from_env(env), lambda: _pool_channel(env), lambda: _cells_store(env)]
    elif machines == "local":
        from dispatcher.machines.local.provider import LocalSettings

        checks += [lambda: LocalSettings.from_env(env), lambda: _local_bot_file(env)]
    cloud = ("ecs", "gce", "fly", "cerebrium", "cloudrun", "modal", "aci", "k8s")
    offers_daily = "daily" in settings.transports if settings is not None else machines in cloud
    if offers_daily:  # local too: TRANSPORTS=webrtc,daily makes its rooms with DAILY_API_KEY
        from dispatcher.media.daily_settings import DailySettings  # the settings alone: no client

        checks.append(lambda: DailySettings.from_env(env))
    if settings is not None:
        checks.append(lambda: build_turn(settings, env))
        if settings.bot_channel_token and machines in ("gce", "fly", "ecs", "cloudrun"):
            checks.append(lambda: _machine_identity(machines, env))
    if machines not in ("gce", "cerebrium"):  # their settings read BOT_GPU themselves, above
        checks.append(lambda: gpu_problem(machines, env))
    checks.append(lambda: StoreSettings.from_env(env))
    checks += _app_settings(env, machines)
    checks.append(lambda: _regions(env))
    checks.append(lambda: Catalogue.from_env(env, local=machines == "local"))
    for check in checks:
        try:
            check()
        except (SettingsError, ValueError) as exc:
            problems.append(str(exc))
    return problems


def _app_settings(env: Mapping[str, str], machines: str) -> list[Callable[[], object]]:
    """What the app's wiring reads as it is built (dispatcher/wiring.py): checked here, so a start refuses
    them with the rest at once, and `voicefleet config check`, which runs this same list, reports them."""
    from dispatcher.api.dashboard_setting import dashboard_enabled  # not the view: its reserve and store
    from dispatcher.artifacts.settings import ArtifactSettings
    from dispatcher.models.settings import ModelServiceSettings
    from dispatcher.reserve.policy import ReserveSettings

    return [lambda: ReserveSettings.from_env(env, machines or "local"),
            lambda: dashboard_enabled(env, local=machines == "local"),
            lambda: ArtifactSettings.from_env(env),
            lambda: ModelServiceSettings.from_env(env)]


def _cells_store(env: Mapping[str, str]) -> None:
    """ECS_CELLS, CLOUDRUN_CELLS, GCE_CELLS, ACI_CELLS and K8S_CELLS record each session's cell in the shared store, so
    that a replay at any replica, or after a restart, meets its machine there: without a store a restart
    would launch a second."""
    for cells in ("ECS_CELLS", "CLOUDRUN_CELLS", "GCE_CELLS", "ACI_CELLS", "K8S_CELLS"):
        if setting_text(env, cells) and not setting_text(env, "REDIS_URL"):
            raise SettingsError(f"{cells} needs the shared store: set REDIS_URL (each session's cell is recorded "
                                "there, so a replay after a restart meets its machine instead of launching a second)")


def _pool_channel(env: Mapping[str, str]) -> None:
    """A Kubernetes bot's pod holds no session value and no credential (whoever may `get` pods or claims
    reads them): its bot takes its session over the channel, so `MACHINES=k8s` needs one (docs/kubernetes.md)."""
    from dispatcher.machines.k8s.settings import AGENT_SANDBOX

    if setting_text(env, "BOT_CHANNEL_TOKEN"):
        return
    if setting_choice(env, "K8S_MODE") == AGENT_SANDBOX:
        raise SettingsError("K8S_MODE=agent-sandbox needs the bot channel (BOT_CHANNEL_TOKEN, and BOT_CHANNEL_URL "
                            "in the SandboxTemplate's pod): its bots take their sessions over it")
    raise SettingsError("MACHINES=k8s needs the bot channel (BOT_CHANNEL_TOKEN and BOT_CHANNEL_URL): a session's "
                        "pod holds no secret of it, so its bot takes its values over the channel")


def _regions(env: Mapping[str, str]) -> None:
    from dispatcher.regions.config import Regions

    if Regions.from_env(env).several and not setting_text(env, "DISPATCHER_API_KEYS"):
        # A session belongs to the key that made it in every region: keyless, each region would own
        # its sessions alone.
        raise SettingsError("REGION needs DISPATCHER_API_KEYS (the same keys in every region): docs/regions.md")


def _machine_identity(machines: str, env: Mapping[str, str]) -> None:
    """With a channel, Compute Engine, Fly and ECS bots must prove their machine (docs/security.md): a
    dispatcher that cannot check their identities would refuse every bot, so it says so before starting."""
    from dispatcher.channel.identity import identity_audience

    # ECS too: its bots' presigns are bound to the audience (dispatcher/machines/ecs/identity.py).
    missing = [] if identity_audience(env) else ["BOT_CHANNEL_URL (or BOT_IDENTITY_AUDIENCE)"]
    if machines == "fly" and not (setting_text(env, "FLY_ORG") or setting_text(env, "FLY_OIDC_ISSUER")):
        missing.append("FLY_ORG (or FLY_OIDC_ISSUER)")
    if machines == "ecs" and not setting_text(env, "ECS_BOT_TASK_ROLE_ARNS"):  # the bots' task roles
        missing.append("ECS_BOT_TASK_ROLE_ARNS")
    if machines == "cloudrun" and not setting_text(env, "CLOUDRUN_BOT_SERVICE_ACCOUNT_ID"):  # whose tokens
        missing.append("CLOUDRUN_BOT_SERVICE_ACCOUNT_ID")
    if missing:
        raise SettingsError(
            f"MACHINES={machines} with a bot channel checks each bot's machine identity: set "
            + " and ".join(missing)
        )


def _local_bot_file(env: Mapping[str, str]) -> None:
    # The bot's own rule, not a copy: local mode runs `python -m bot` from this repository.
    try:
        from bot.user_bot import ENV_BOT_FILE, bot_file_path
    except ImportError:  # an image without the bot: it cannot run local bots anyway
        return
    path = bot_file_path(env)
    if not path.is_file():
        raise SettingsError(
            f"{ENV_BOT_FILE}={env.get(ENV_BOT_FILE, '')!r} is not a file: name your Pipecat bot.py (one with "
            "`async def bot(runner_args)`), or unset it for the parrot"
        )


def build_turn(settings: Settings, env: Mapping[str, str]) -> TurnCredentials | None:
    """TURN REST credentials when a TURN server is configured; a must for cloud WebRTC."""
    turn = TurnSettings.from_env(env, cloud=settings.cloud)
    if turn is None and settings.cloud and "webrtc" in settings.transports:
        raise SettingsError(
            "TRANSPORTS includes webrtc: set TURN_URLS and TURN_SHARED_SECRET (cloud bots accept no inbound "
            "traffic, so both peers' media goes through the TURN relay)"
        )
    return TurnCredentials(turn) if turn is not None else None
