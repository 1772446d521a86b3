# ruff: noqa: E501  (prose: the page's own lines and links, kept as they are shown)
"""Every setting voicefleet reads, once: its name, section, type, default, meaning and whether it is a
secret. docs/configuration.md and docs/reference/configuration.schema.json are generated from it
(`uv run python -m dispatcher.settings.docs`), and tests hold it equal to what the code reads:
a new variable is added here, with its meaning, or the tests name it."""

from __future__ import annotations

from voicefleet_settings.model import BOOLEAN, ENUM, INTEGER, LIST, NUMBER, STRING, Section, Setting

# What a team actually sets, in the order it meets them: name → why, in a line (the page opens with them,
# `python -m dispatcher --help` lists them).
FIRST_SETTINGS = {
    "MACHINES": "where bots run: `local` or a cloud provider",
    "BOT_FILE": "the Pipecat bot every session runs (locally; a cloud runs `BOT_IMAGE`)",
    "DISPATCHER_API_KEYS": "who may start sessions (required off a laptop)",
    "DISPATCHER_ADMIN_KEYS": "who may change releases and read the deployment's status",
    "MAX_CONCURRENT_SESSIONS": "sessions at once before a start is answered `429`",
    "RESERVE_MIN_IDLE": "warm bots kept ready, so a caller never waits for a cold start",
    "LOCAL_BOT_ENV": "which of your variables (your bot's service keys) reach local bots",
    "DAILY_API_KEY": "Daily's key, for a cloud deployment's rooms",
    "REDIS_URL": "the store several replicas share",
    "LOG_FORMAT": "`json` for a log pipeline",
}
# Also in `python -m dispatcher --help`, after those.
HELP_SETTINGS = {
    "HOST": "address to listen on",
    "PORT": "port to listen on (0 picks a free one)",
    "BOT_PYTHON": "local: the interpreter bots run with, e.g. your bot's virtualenv",
    "TRANSPORTS": "what sessions may use: daily, webrtc",
    "BOT_CHANNEL_TOKEN": "the deployment secret each bot's channel credential is derived from",
    "LOG_LEVEL": "debug, info, warning, error, critical",
    "VOICEFLEET_CONFIG": "a TOML file of settings by name, below the environment",
    "VOICEFLEET_SIZE": "small, medium, large: the defaults of sessions, reserve, caps and bot size",
    "VOICEFLEET_PROFILE": "dev or prod: prod needs keys, logs JSON, stops on a misspelt setting",
}

# What the page says before the first section (after its own opening, which dispatcher/settings/docs.py writes).
INTRODUCTION = """\
# Configuration

Everything is configured with environment variables: the dispatcher's, its providers', and the
bot's. This page lists every variable the code reads, once: it is generated from the catalogue of
settings (`voicefleet_settings/catalogue.py`), which tests hold equal to what the code reads. The
dispatcher and the bot host read every setting by its entry, so the default, the bounds and the
allowed values shown here are the ones a start applies. A whole number or a number outside its
bounds, a word that is not one of a setting's choices, or a boolean that is not `1`/`0`,
`true`/`false`, `yes`/`no` or `on`/`off` (any case) stops the dispatcher at start-up with one line
naming the variable and what it allows (every problem of a configuration at once, and `voicefleet
config check` reports them before a start); a bot given such a value exits at its start with that
line (exit code 2), before it takes a session.

[reference/configuration.schema.json](reference/configuration.schema.json) is the same catalogue as
a JSON Schema, for an editor or CI to check a `VOICEFLEET_CONFIG` file with: a number is held to its
bounds, a choice to its list (`enum`), a boolean is `true`/`false`, `0`/`1` or one of the words
above; a value written as text (as the environment holds it) is held to its form only (digits, a
boolean's words), its bounds being the start's check.

Secrets (`DISPATCHER_API_KEYS`, `BOT_CHANNEL_TOKEN`, `TURN_SHARED_SECRET`, `REDIS_MESSAGE_SECRET`, `DAILY_API_KEY`,
`FLY_API_TOKEN`, the bot's service keys) belong in the environment from a secret store, never on
a command line or in plain configuration.

The dispatcher and the bot print their own summaries:

<!-- runnable -->
```sh
uv run python -m dispatcher --help
uv run python -m bot --help
```
"""

# The page's tables in order, each with the prose shown before it (its heading, what applies to all of it).
SECTIONS: tuple[Section, ...] = (
    Section("sources", ""),  # after the page's generated "Where a setting comes from"
    Section(
        "server",
        """\
## The dispatcher (every mode)

### The server
""",
    ),
    Section(
        "keys",
        """\
### Keys and callers
""",
    ),
    Section(
        "sessions",
        """\
### Sessions
""",
    ),
    Section(
        "releases",
        """\
### Releases
""",
    ),
    Section(
        "local",
        """\
### Local bots
""",
    ),
    Section(
        "media",
        """\
### Transports, TURN and ICE
""",
    ),
    Section(
        "channel",
        """\
### The bot channel
""",
    ),
    Section(
        "observability",
        """\
### Logs and metrics
""",
    ),
    Section(
        "traces",
        """\
## Traces (OpenTelemetry)

The dispatcher and the bot host read OpenTelemetry's standard variables, the same way
(`botchannel/telemetry.py`); local bots inherit every `OTEL_*` variable but the collector's key
(`OTEL_EXPORTER_OTLP_HEADERS` and its per-signal `…_HEADERS` forms), which reaches them only where
`LOCAL_BOT_ENV` names it (without it their spans go to the collector unauthenticated). Unset, no exporter is
loaded and nothing is sent; each session still gets a trace id (the start answer's `trace_id`).
What the traces hold: [operations.md](operations.md#operating-voicefleet).
""",
    ),
    Section(
        "webhooks",
        """\
The SDK itself reads the rest: `OTEL_SERVICE_NAME` (default here `voicefleet-dispatcher` and
`voicefleet-bot`; a local bot inherits the dispatcher's, so leave it unset locally),
`OTEL_RESOURCE_ATTRIBUTES` (e.g. `deployment.environment=prod`),
`OTEL_EXPORTER_OTLP_HEADERS` (a vendor's key: a secret), `OTEL_EXPORTER_OTLP_TIMEOUT`,
`OTEL_EXPORTER_OTLP_COMPRESSION`, the batch processor's `OTEL_BSP_*` and the sampler's
`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`. A bot image exports only when its project has
`opentelemetry-sdk` and the exporter of its protocol (`opentelemetry-exporter-otlp-proto-http`, or
`…-proto-grpc`; Pipecat's `tracing` extra brings the SDK).

**pipecat-examples' open-telemetry bots** (e.g. `open-telemetry/jaeger`) build their own OTLP/gRPC
exporter from `OTEL_EXPORTER_OTLP_ENDPOINT` and install it with Pipecat's `setup_tracing`. One setting
then serves both halves of the trace:

```sh
OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \\
  ENABLE_TRACING=true LOCAL_BOT_ENV=ENABLE_TRACING,… BOT_FILE=…/jaeger/bot.py uv run --all-groups python -m dispatcher
```

The dispatcher exports its spans over gRPC to the same collector, and in the bot, whose own provider
already exports OTLP in that protocol, voicefleet adds no second exporter: its `bot.session` spans and Pipecat's leave
once, through the bot's exporter, under the bot's `service.name` (`pipecat-demo` there). The
dispatcher's image leaves the gRPC exporter out (grpcio is 18 MB installed, against the dispatcher
closure's 80 MB budget, and every OTLP collector also listens on 4318): in a deployment, keep the
stack's endpoint on the collector's HTTP port, or add the package to the dispatcher's image. There a
bot whose own exporter speaks gRPC is not trusted with the export (it would send gRPC to an HTTP
port): voicefleet's HTTP exporter goes beside it, and the bot's spans arrive through that one. Setting
only the endpoint on 4317, as the example's README does, sends the dispatcher's spans as OTLP/HTTP to
a gRPC port: it logs which variable to set.

## Lifecycle webhooks

`session.started` (claimed or launched), `session.ready`, `session.ended` (with `reason`,
`exit_code`, `duration_seconds`) and `session.failed` (a start that failed: `code`, `message`),
POSTed as JSON `{"type", "timestamp" (ISO 8601, UTC), "data": {"session_id", ...}}`
([what a receiver gets](http-api.md#lifecycle-webhooks-what-your-receiver-gets)) and signed by the
[Standard Webhooks](https://www.standardwebhooks.com/) scheme (`webhook-id`, `webhook-timestamp`,
`webhook-signature`): verify with any of its libraries and your secret. Delivery is at least
once: `webhook-id` is `msg_<session id>_<type>` at every replica and every retry, so drop repeats
by it. A start never waits for a webhook (`dispatcher/sessions/webhooks.py`). With several replicas the
events wait for delivery in the store, sealed with `REDIS_MESSAGE_SECRET` so that the store's
credential alone gets nothing signed with your webhook secret, and one whose replica dies is
delivered by another ([operations.md](operations.md#lifecycle-webhooks-across-replicas)). An event
not delivered within its budget (its queue, its attempts and their waits, and a minute) is dropped.
""",
    ),
    Section(
        "recording",
        """\
## Recordings (every call kept)

What a session keeps, where, and how to read or erase it: [recording.md](recording.md). The bot
taps the call; the dispatcher owns the upload and the bot holds no credential of the store.
""",
    ),
    Section(
        "store",
        """\
## Several replicas (the coordination store)

Unset `REDIS_URL` means one process with everything in memory (local mode needs nothing more).
""",
    ),
    Section(
        "regions",
        """\
## Several regions

Unset, a dispatcher is one region. Set the first three together; each mistake stops the dispatcher at
start-up in one line naming it ([regions.md](regions.md)).
""",
    ),
    Section(
        "phone",
        """\
## Phone calls

All optional: a carrier whose credential is unset is reached only with a one-time path token (from
`POST /start` or a signed webhook of a carrier that is configured), or without any proof on a local
dispatcher on a loopback address with no API keys. The credentials are secrets.
""",
    ),
    Section(
        "models",
        """\
## A shared model service (converged bots)

Bots that stream to one shared speech-to-speech model service (an open full-duplex model such as
Moshi or PersonaPlex on a GPU, speaking Moshi's protocol): with `MODEL_SERVICE_URL` set, every
session of this dispatcher is taken to use it, and a start is refused `503` while the service has no
free stream or its free streams are unknown ([converged.md](converged.md#a-shared-model-service)).
The bot is given the URL as any other variable of its own (`LOCAL_BOT_ENV`, a bot secret): the
example bot that streams to it, [examples/moshi](../examples/moshi/bot.py), reads the same variable.
""",
    ),
    Section(
        "gpu",
        """\
## Cloud providers

Every cloud mode that offers `daily` (the default) needs Daily for the session's room, plus the
variables of its provider. How each provider launches, names, waits for and stops machines, and
its limits and retries: [providers.md](providers.md).

**A GPU for the bots** (`dispatcher/machines/gpu.py`: one neutral name, each provider's own name for it)
""",
        examples=True,
    ),
    Section(
        "daily",
        """\
**Daily** (every cloud mode)
""",
        examples=True,
    ),
    Section(
        "ecs",
        """\
**`MACHINES=ecs`** (ECS RunTask on Fargate, over ECS's JSON API signed with SigV4; credentials from the standard AWS chain, task-role keys refreshed before they expire)
""",
        examples=True,
    ),
    Section(
        "cloudrun",
        """\
**`MACHINES=cloudrun`** (a Cloud Run job execution per session; Application Default Credentials, scope `cloud-platform`; [providers.md](providers.md#machinescloudrun-a-cloud-run-job-execution-per-session))
""",
        examples=True,
    ),
    Section(
        "gce",
        """\
**`MACHINES=gce`** (a Compute Engine VM per session; Application Default Credentials)
""",
        examples=True,
    ),
    Section(
        "gce-drain",
        """\
`python -m stacks.drain` on GCP (the drain, not the dispatcher, reads these: it waits for Cloud Run's last instance):
""",
        examples=True,
    ),
    Section(
        "fly",
        """\
**`MACHINES=fly`** (Fly Machines)
""",
        examples=True,
    ),
    Section(
        "cerebrium",
        """\
**`MACHINES=cerebrium`** (one call of a deployed Cerebrium app's function per session: [providers.md](providers.md#machinescerebrium-a-function-call-per-session); needs `BOT_CHANNEL_TOKEN` and `BOT_CHANNEL_URL`)
""",
        examples=True,
    ),
    Section(
        "modal",
        """\
A run's records are kept `MAX_SESSION_SECONDS` plus an hour; one process (no `REDIS_URL`) keeps at most 10,000 at once, past which a start is refused with `503 cerebrium_capacity`.
**`MACHINES=modal`** (a Modal Sandbox per session; needs the dependency group `modal`: [providers.md](providers.md#machinesmodal-a-modal-sandbox-per-session))
""",
        examples=True,
    ),
    Section(
        "aci",
        """\
**`MACHINES=aci`** (an Azure Container Instances container group per session, over ARM's REST API; no Azure SDK)

The Azure stack writes these in one place, `stacks/azure/machines.py` (`stacks/shared/contract.py` `ACI_ENV`):
the required four, `AZURE_CLIENT_ID` (the dispatcher's user-assigned identity), `ACI_REGISTRY_IDENTITY`
(the bots' identity), `ACI_REGISTRY_SERVER`, `ACI_SUBNET_ID`, `ACI_GROUP_PREFIX` (`vf-<stack>`: the
reaper's and the drain's scope), `ACI_CPU`, `ACI_MEMORY_GB`, `ACI_BOT_SETTINGS`, with bot secrets
`ACI_BOT_SECRETS` (Key Vault references), and with TURN `ACI_BOT_IMAGE_WEBRTC` (the SmallWebRTC bot).
""",
        examples=True,
    ),
    Section(
        "k8s",
        """\
**`MACHINES=k8s`** (a bare Pod per session in one namespace of any conformant Kubernetes cluster, over the API
server's REST API; the `pods` mode: [kubernetes.md](kubernetes.md)). `BOT_IMAGE` is the bot image, by digest.
""",
        examples=True,
    ),
    Section(
        "reserve",
        """\
## The warm reserve

What each setting does to the reserve's size, and what a reserve costs: [reserve.md](reserve.md).
The reserve belongs to the deployment: with several replicas (`REDIS_URL`) these are the
deployment's numbers, planned by one replica at a time, not each replica's.
""",
    ),
    Section(
        "reserve-planner",
        """\
The fleet planner ([reserve.md](reserve.md#the-fleet-planner-forecast-tiers-and-one-plan-for-the-deployment))
sizes one reserve for the whole deployment, in tiers, from a forecast of its starts, with the
variables above as its floor and caps. The dispatcher and the simulator
(`python -m bench.reserve_sim --env NAME=VALUE`) read these alike. The planning lease lasts
`REDIS_LEASE_SECONDS`: a planner that dies hands over within it. Where the provider can freeze a
machine (Fly), the plan has a frozen tier: `RESERVE_MIN_HOT` (or more, when starts come fast
enough to claim a bot within a freeze's round trip) stay running, the rest of the reserve is
frozen once warm, and the replica holding a bot freezes it.
""",
    ),
    Section(
        "bot",
        """\
## The bot

Bots read these from their environment. Local bots are given the ones below from the dispatcher's
environment, so set them before `python -m dispatcher`; your bot's own variables (the assistant's
keys below, any service key) reach them only when named in `LOCAL_BOT_ENV`. Flags of
`python -m bot` win over them ([bot.md](bot.md#configuration)).
""",
    ),
    Section(
        "bot-assistant",
        """\
The assistant example (`BOT_FILE=examples/assistant/bot.py`, Deepgram → OpenAI → Cartesia) reads
these (locally, name the ones you set in `LOCAL_BOT_ENV`):
""",
    ),
    Section(
        "bot-host",
        """\
The host (`python -m bot`) around any bot file:
""",
    ),
    Section(
        "bot-session",
        """\
### The session's environment (set by the dispatcher)

A bot the dispatcher launches for one session gets its launch values in its environment (the
container's environment on ECS and Fly, instance metadata copied into it on Compute Engine, the
process environment locally), never on a command line: `VOICEFLEET_SESSION_ID`,
`MAX_SESSION_SECONDS`, `BOT_TRANSPORT` and its own `BOT_CHANNEL_TOKEN`. The session's secrets and
data are not launch values (whoever may describe a task or an instance reads those): with a
channel, which every dispatcher-run deployment has unless it runs without `BOT_CHANNEL_TOKEN`, the
bot takes the rest over it as its assignment ([security.md](security.md#how-session-secrets-reach-a-bot)).
The variables below carry them to a bot run by hand and in a deployment without a channel.
""",
    ),
    Section(
        "deploying",
        """\
## Deploying

The Pulumi program reads its stack configuration (`pulumi config`, [pulumi.md](pulumi.md#configuration)),
and one variable:
""",
    ),
    Section(
        "cli",
        """\
## The `voicefleet` command

The operator's command ([cli.md](cli.md)) reads these variables; `--url` wins over the first.
""",
    ),
)
# What the page says after its last table.
CLOSING = """\

"""


def _calls_out(prefix: str, carrier: str, through: str) -> tuple[Setting, ...]:
    """A carrier's calls placed out by `POST /calls`: its pace, the wait for it, ring time, who may call where as
    whom, and voicemail choice (one reader: dispatcher/phone/twilio_dial.py `DialSettings`)."""
    return (
        Setting(
            f"{prefix}_CALLS_PER_SECOND", "phone", NUMBER, above=0, maximum=1000, default="1",
            meaning=f"the calls a second `POST /calls` places {through}, counted across replicas and regions",
        ),
        Setting(
            f"{prefix}_CALL_MAX_WAIT_SECONDS", "phone", NUMBER, minimum=0, maximum=3600, default="5",
            meaning=(
                f"how long `POST /calls` waits for the {carrier} account's pace; a call that would wait longer is "
                "refused `429` with `Retry-After`"
            ),
        ),
        Setting(
            f"{prefix}_RING_SECONDS", "phone", INTEGER, minimum=5, maximum=120, default="30",
            meaning=f"how long a call placed through {carrier} rings before it is `no_answer` (the create's `Timeout`)",
        ),
        Setting(
            f"{prefix}_CALLERS", "phone", LIST,
            shown="none", example="`support-bot,sales-bot`",
            meaning=(
                f"the API key names (`DISPATCHER_API_KEYS`' `name:`) that may place calls through {carrier}: the "
                "account pays for every call, so unset, no key may and such calls are refused `403` "
                "([phone.md](phone.md#who-may-call-out))"
            ),
        ),
        Setting(
            f"{prefix}_DESTINATIONS", "phone", LIST, default="+*",
            example="`+1*,+44*`",
            meaning=(
                f"the numbers a call placed through {carrier} may go to, E.164 patterns (`+1*`: any number starting "
                "+1; no `*`: that number alone); premium-rate, satellite and emergency numbers (`+1900`, `+882`, "
                "`+911`, …) only when a pattern names them at least as closely; others are refused `403`"
            ),
        ),
        Setting(
            f"{prefix}_CALLER_IDS", "phone", LIST,
            shown="none", example="`+14155550199`",
            meaning=(
                f"the numbers (E.164) a call placed through {carrier} may show as `from`: the account's numbers the "
                "dispatcher's keys may use; unset, every call is refused `403`"
            ),
        ),
        Setting(
            f"{prefix}_VOICEMAIL", "phone", ENUM, choices=("hang_up", "message", "flag"), default="hang_up",
            meaning=(
                f"what a call placed through {carrier} does when a machine answers, unless the call says "
                "(`voicemail`): `hang_up`, `message` (the bot is told at the beep) or `flag` (the bot is told at once)"
            ),
        ),
    )


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "VOICEFLEET_CONFIG", "sources", STRING,
        meaning=(
            "a TOML file (or YAML, by a `.yaml`/`.yml` name) of settings by name, below the environment; "
            "a name in it no setting has stops the start. Never secrets: those come from the environment"
        ),
    ),
    Setting(
        "VOICEFLEET_SIZE", "sources", STRING,
        meaning="`small`, `medium` or `large`: the defaults of the settings it sizes ([above](#size-and-profile))",
    ),
    Setting(
        "VOICEFLEET_PROFILE", "sources", STRING, default="dev",
        meaning=(
            "`dev` or `prod`: `prod` logs JSON, serves no dashboard by default, needs `DISPATCHER_API_KEYS`, and "
            "stops the start on a misspelt setting ([above](#size-and-profile))"
        ),
    ),
    Setting(
        "HOST", "server", STRING, default="127.0.0.1",
        meaning="address to listen on",
    ),
    Setting(
        "PORT", "server", INTEGER, minimum=0, maximum=65535, default="8080",
        meaning="port to listen on",
    ),
    Setting(
        "MACHINES", "local", ENUM, choices=("local", "ecs", "gce", "fly", "cerebrium", "cloudrun", "modal", "aci", "k8s"), default="local",
        meaning=(
            "where bots run: `local`, `ecs`, `gce`, `fly`, `cerebrium`, `cloudrun`, `modal`, `aci` "
            "([below](#cloud-providers))"
        ),
    ),
    Setting(
        "DISPATCHER_API_KEYS", "keys", STRING, secret=True,
        shown="unset",
        meaning=(
            "comma-separated keys of printable ASCII (a key with a control or a non-ASCII character could never "
            "be matched: the dispatcher refuses to start, naming which); each may carry a name, `name:key` (a "
            "name is 1–32 of `a-z`, `0-9`, `-`, not starting with `-`): every key of one name is one caller, "
            "whose sessions, limits and default release stay the name's while its keys are rotated "
            "([operations.md](operations.md#rotating-a-client-key)). The first `:` ends the name, so a named key "
            "may hold `:`; an unnamed key holding `:` is written `:key`. A bad entry is refused at start by its "
            "position, never its text. Named keys need `BOT_CHANNEL_TOKEN` (or `REGION_SECRET` with regions) in "
            "the cloud or with `REDIS_URL`: the name's sessions are bound to it with that secret; when set, every "
            "call but `/healthz` (and the static page) needs `Authorization: Bearer <key>`. Keys are kept only as "
            "SHA-256 digests and compared in constant time. **Unset is allowed only in local mode on a loopback "
            "`HOST`**"
        ),
    ),
    Setting(
        "DISPATCHER_ADMIN_KEYS", "keys", STRING, secret=True,
        shown="unset",
        meaning=(
            "comma-separated keys: the cloud stacks set it from the required `dispatcherAdminKeys` secret, by "
            "reference to their secret store ([pulumi.md](pulumi.md), "
            "[releases.md](releases.md#shipping-a-new-version-step-by-step)), of the admin surface (`/releases`: "
            "traffic over the bot's releases, [releases.md](releases.md); `/status`: the deployment at a glance, "
            "[http-api.md](http-api.md#the-deployment-at-a-glance)); never one of `DISPATCHER_API_KEYS` (the "
            "dispatcher refuses to start). A client key there is answered `403 admin_key_required`; with none "
            "set, a cloud deployment answers `403 admin_not_configured`, and a keyless local dispatcher lets its "
            "loopback caller in. An admin key also reaches the sessions it started itself (a release's smoke "
            "sessions: their offer, status and timeline), no other. A secret, like the client keys"
        ),
    ),
    Setting(
        "DASHBOARD_ENABLED", "server", BOOLEAN,
        shown="`1` locally, `0` in the cloud",
        meaning=(
            "`1` serves the deployment at a glance at `GET /dashboard` "
            "([operations.md](operations.md#the-deployment-at-a-glance)); `0` does not. The page holds nothing "
            "secret: it asks for an admin key and reads `GET /status` with it, which answers with or without the "
            "page"
        ),
    ),
    Setting(
        "DISPATCHER_API_KEY_RELEASES", "keys", STRING,
        shown="unset",
        meaning=(
            "a key's default release (a tester's key always gets `staging`): `RELEASE=<key name>` (every key of "
            "the name) or `RELEASE=<the first 12+ hex of the key's SHA-256>`, comma-separated (`printf %s \"$KEY\" "
            "\\| sha256sum \\| cut -c1-12`); no key itself, so not a secret. A start's own `release` still wins"
        ),
    ),
    Setting(
        "RELEASES", "releases", STRING,
        shown="unset (one release, `default`)",
        meaning=(
            "the releases that exist, written by a stack: JSON `{\"releases\": [{\"name\", \"images\": "
            "{\"daily\"\\|\"webrtc\"\\|\"websocket\"\\|\"*\": \"<what the provider launches>\"}, \"created\", \"env\"}], "
            "\"canaryPercent\": N}`, oldest first. `env` is a local release's only (its `BOT_PYTHON`): a cloud "
            "release's settings are in what it launches, and a cloud dispatcher refuses `env` rather than start "
            "bots without it. A release not seen before enters at `canaryPercent` once, when its smoke session "
            "passes ([releases.md](releases.md#smoke-session))"
        ),
    ),
    Setting(
        "BOT_RELEASES", "releases", STRING,
        shown="unset",
        meaning=(
            "local releases from bot files, A/B on a laptop: `stable=bot.py,next=bot_v2.py` (each `NAME=FILE`, "
            "optionally `@/path/to/python` for its own interpreter). The first takes all traffic unless "
            "`RELEASE_WEIGHTS` says otherwise"
        ),
    ),
    Setting(
        "RELEASE_WEIGHTS", "releases", STRING,
        shown="the first of `BOT_RELEASES` at 100",
        meaning=(
            "the local releases' first weights, `stable=90,next=10` (adding up to 100); after that, `/releases` "
            "changes them"
        ),
    ),
    Setting(
        "RELEASE_HEALTH_MIN_CANARY", "releases", INTEGER, minimum=1, default="20",
        meaning=(
            "sessions of a canary and of the stable release the automatic rollback needs in its window before it "
            "judges a canary ([releases.md](releases.md#automatic-rollback)); lower only to try it on a laptop: "
            "fewer sessions, more false rollbacks"
        ),
    ),
    Setting(
        "RELEASE_HEALTH_MIN_STABLE", "releases", INTEGER, minimum=1, default="100", row="RELEASE_HEALTH_MIN_CANARY",
    ),
    Setting(
        "RELEASE_HEALTH_TURN_LATENCY_MARGIN_SECONDS", "releases", NUMBER, above=0, default="0.5",
        meaning=(
            "how much slower a canary's turns (the caller's end of speech to the bot's first audio, each session's "
            "median) must be than the stable release's, beyond the statistics' doubt, before the automatic rollback "
            "acts; at least half the stable's own ([releases.md](releases.md#the-conversation))"
        ),
    ),
    Setting(
        "RELEASE_HEALTH_CONVERSATION_MARGIN", "releases", NUMBER, above=0, maximum=1, default="0.05",
        meaning=(
            "how much larger a canary's share of sessions with a caller turn left unanswered, or of callers who left "
            "within the first turn, must be than the stable release's (0.05: 5 points) before the automatic rollback "
            "acts ([releases.md](releases.md#the-conversation))"
        ),
    ),
    Setting(
        "RELEASE_HEALTH_CUT_OFF_MARGIN", "releases", NUMBER, above=0, maximum=1, default="0.2",
        meaning=(
            "how much larger a canary's share of bot turns the caller cut off (each session's) must be than the "
            "stable release's before the automatic rollback acts ([releases.md](releases.md#the-conversation))"
        ),
    ),
    Setting(
        "RELEASE_SMOKE_DEADLINE_SECONDS", "releases", NUMBER, minimum=1, default="120",
        meaning=(
            "how long a release's smoke session has, from its start, for the caller to hear the bot; undecided "
            "then, the smoke failed and its machine is stopped ([releases.md](releases.md#smoke-session)). Leave "
            "room for a cold start"
        ),
    ),
    Setting(
        "RELEASE_AUTO_ROLLBACK", "releases", BOOLEAN, default="on",
        meaning=(
            "`off`: a canary that breaches is shown (`GET /releases`, a log line) and its traffic left to the "
            "operator"
        ),
    ),
    Setting(
        "RELEASE_EVAL_REQUIRED", "releases", BOOLEAN, default="off",
        meaning=(
            "`on`: a new release takes traffic only once its scenario suite has passed on it "
            "(`voicefleet releases smoke NAME --suite PATH`); a plain smoke session is refused "
            "([evals.md](evals.md#the-release-gate))"
        ),
    ),
    Setting(
        "MAX_CONCURRENT_SESSIONS", "sessions", INTEGER, minimum=1, default="10",
        meaning=(
            "active sessions before `POST /start` answers `429` + `Retry-After`; an admin changes it at runtime, "
            "with each key's share and the reserve's bounds (`voicefleet capacity set`, "
            "[operations.md](operations.md#changing-capacity-at-runtime))"
        ),
    ),
    Setting(
        "KEY_SESSION_SHARE", "keys", NUMBER, above=0, maximum=1, default="0.5",
        meaning=(
            "the part of `MAX_CONCURRENT_SESSIONS` one API key may hold (rounded down, at least 1) while other "
            "callers share the deployment; past it the key's start answers `429` `key_at_capacity` + "
            "`Retry-After`, naming its share. It applies to every key and to the calls carriers open themselves "
            "(one caller of their own) with two or more keys in `DISPATCHER_API_KEYS`; with one key, only to the "
            "calls carriers open (the key may use every slot); keyless, to nothing. Counted for the whole "
            "deployment (the store with `REDIS_URL`). `1` turns the share off "
            "([security.md](security.md#per-key-shares))"
        ),
    ),
    Setting(
        "KEY_WARM_SHARE", "keys", NUMBER, above=0, maximum=1, default="0.5",
        meaning=(
            "the part of the warm reserve (`RESERVE_MAX_IDLE`) one API key may claim a minute under the same "
            "rule; past it the key's starts launch cold (a start whose `maxWaitSeconds` only a warm bot meets "
            "answers `429` `key_warm_share_spent`)"
        ),
    ),
    Setting(
        "MAX_SESSION_SECONDS", "sessions", INTEGER, minimum=10, default="1800",
        meaning=(
            "hard cap on a session, passed to the bot (and, in the cloud, to the provider and the tokens)"
        ),
    ),
    Setting(
        "START_WAIT_SECONDS", "sessions", NUMBER, minimum=0.1, default="30",
        meaning="deadline of `?wait=started` and of an early offer waiting for its bot",
    ),
    Setting(
        "SESSION_WAITS", "sessions", INTEGER, minimum=1, default="1000",
        meaning=(
            "open waits on sessions (event streams and long-polls of `GET /sessions/{id}`) per replica and per "
            "API key; past either, `429` `too_many_waits` + `Retry-After`"
        ),
    ),
    Setting(
        "SESSION_WAITS_PER_KEY", "sessions", INTEGER, minimum=1, default="20", row="SESSION_WAITS",
    ),
    Setting(
        "SESSION_WAIT_SECONDS", "sessions", NUMBER, minimum=1, default="300",
        meaning="deadline of one event stream (a long-poll's own `timeout` is at most 50 s)",
    ),
    Setting(
        "SESSION_POLL_SECONDS", "sessions", NUMBER, minimum=0.1, default="1",
        meaning=(
            "how often a watched session past `starting` is read from the provider (while `starting`, the "
            "provider's own wait is used)"
        ),
    ),
    Setting(
        "START_RATE_PER_KEY", "keys", NUMBER, minimum=0.001, default="5",
        meaning=(
            "per-API-key token bucket on `POST /start` (`429` `rate_limited` + `Retry-After` past it); the calls "
            "carriers open themselves are one caller with the same bucket"
        ),
    ),
    Setting(
        "START_BURST_PER_KEY", "keys", INTEGER, minimum=1, default="20", row="START_RATE_PER_KEY",
    ),
    Setting(
        "READ_RATE_PER_KEY", "keys", NUMBER, minimum=0.001, default="20",
        meaning=(
            "per-API-key token bucket on reading, stopping and signalling sessions (`GET`/`DELETE "
            "/sessions/{id}`, offers, and each provider read of a session's event stream: past the bucket a "
            "stream waits)"
        ),
    ),
    Setting(
        "READ_BURST_PER_KEY", "keys", INTEGER, minimum=1, default="100", row="READ_RATE_PER_KEY",
    ),
    Setting(
        "REVOKED_KEYS_KEEP_DAYS", "keys", NUMBER, above=0, maximum=3650, default="30",
        meaning=(
            "how long a revoked runtime secret keeps its entry (its slow hash) in the runtime settings: its "
            "holder is told `401 api_key_revoked` meanwhile, `401 unauthorized` after; the entry is then dropped "
            "at the next runtime change and its key name's floor keeps it revoked in every region "
            "([security.md](security.md#revoked-runtime-keys-are-compacted))"
        ),
    ),
    Setting(
        "REVOKED_KEYS_KEPT", "keys", INTEGER, minimum=1, maximum=10000, default="2000",
        meaning=(
            "the most revoked runtime secrets kept with their slow hash, the newest first, whatever their age: "
            "bounds the runtime settings however often keys are rotated"
        ),
    ),
    Setting(
        "REAPER_INTERVAL_SECONDS", "sessions", NUMBER, minimum=0, default="60",
        meaning="how often the reaper sweeps (jittered ±20 %; `0` turns it off)",
    ),
    Setting(
        "REAPER_GRACE_SECONDS", "sessions", NUMBER, minimum=0, default="120",
        meaning="a machine still active `MAX_SESSION_SECONDS` + this after launch is stopped by the reaper",
    ),
    Setting(
        "USAGE_PRICES", "sessions", STRING,
        shown="the built-in table (dispatcher/usage/prices.json)",
        meaning=(
            "the services' prices over the built-in table: a JSON file's path or the JSON itself, entries of "
            "`kind`, `model`, `rates`, `source` ([operations.md](operations.md#what-a-call-costs-and-who-used-it)); "
            "a model in neither is \"not priced\", never 0"
        ),
    ),
    Setting(
        "BUDGET_START_RESERVE_USD", "sessions", NUMBER, minimum=0.0001, maximum=1_000_000,
        shown="what a session can be billed at most as it starts: its services' bound over 60 s at the price "
              "table's dearest rates plus a minute of its machine ($11.16 and the minute with the built-in table), "
              "at least $0.01",
        meaning=(
            "what each running session of a key with a spend budget holds against it from its admission, in "
            "dollars, until its bill replaces it (the key's average call this month when that is more), so a burst "
            "of starts cannot pass the budget ([operations.md](operations.md#budgets-per-key)). One figure for "
            "every key: lower it where budgets are a few dollars and calls cost cents"
        ),
    ),
    Setting(
        "TURN_RELAY_USD_PER_GB", "sessions", NUMBER, minimum=0, maximum=1000,
        shown="the internet egress of the relay's cloud (dispatcher/usage/prices.json)",
        meaning=(
            "what a relayed call's TURN traffic costs, in dollars per GB (10^9 bytes) the relay carries both ways, "
            "for a relay outside the bots' cloud (a hosted TURN service) or a negotiated rate: each session's "
            "`cost.relay` ([operations.md](operations.md#what-a-call-costs-and-who-used-it)). Unset on a provider "
            "the table has no cloud for (Kubernetes, Fly, Modal, Cerebrium, local), a relayed call's relay is "
            "\"not priced\", never 0"
        ),
    ),
    Setting(
        "USAGE_KEEP_DAYS", "sessions", INTEGER, minimum=1, maximum=800, default="400",
        meaning="how many days of usage rollups (per day, key, release, model) the store keeps for `GET /usage`",
    ),
    Setting(
        "USAGE_REPORT_SECONDS", "sessions", NUMBER, minimum=1, maximum=600, default="15",
        meaning=(
            "how often a bot sends its services' use so far during the call (when it changed): a bot killed "
            "before its end has its use counted up to its last report"
        ),
    ),
    Setting(
        "USAGE_FILES", "sessions", STRING, default="off",
        meaning=(
            "a daily usage file for billing jobs, `usage/<day>.csv` (UTC; the columns of `voicefleet usage "
            "--csv`, one line per key): `off`; `recordings` (beside the recordings, in `RECORDING_DESTINATION`); "
            "or a store of its own, named as `RECORDING_DESTINATION` is (a folder, `s3://bucket/prefix`, "
            "`gs://bucket/prefix`, an Azure container's URL). Today's and yesterday's files are rewritten whole "
            "from the usage rollups ([operations.md](operations.md#a-daily-usage-file-for-billing))"
        ),
    ),
    Setting(
        "USAGE_FILE_SECONDS", "sessions", NUMBER, minimum=1, maximum=86400, default="300",
        meaning="how often each replica rewrites today's and yesterday's usage files when they changed",
    ),
    Setting(
        "CORS_ALLOW_ORIGINS", "server", LIST,
        shown="unset",
        meaning=(
            "comma-separated origins (`https://app.example.com`) allowed to call the API from a browser; none by "
            "default, no wildcards. A local dispatcher also allows loopback origins on any port "
            "(`http://localhost:5173`: a project's own web client on its dev server, as Pipecat's development "
            "runner does), never another site's. A browser's preflight from any other origin is answered `403 "
            "cors_origin_not_allowed` naming this setting, and logged; so is any POST, PUT, PATCH or DELETE such "
            "a page sends without one (`403 origin_not_allowed`, [security.md](security.md)). The dispatcher's "
            "own pages (the origin it is addressed by) need no entry"
        ),
    ),
    Setting(
        "ICE_SERVERS", "media", STRING,
        shown="unset",
        meaning=(
            "WebRTC sessions: STUN/TURN servers answered as `iceConfig` — comma-separated `stun:`/`turn:` URLs, "
            "or a JSON list of `{\"urls\", \"username\", \"credential\"}` (prefer short-lived TURN credentials to a "
            "fixed password in the environment)"
        ),
    ),
    Setting(
        "KEEP_ALIVE_SECONDS", "server", INTEGER, minimum=1, default="5",
        meaning=(
            "HTTP keep-alive; behind a load balancer keep it above the balancer's idle timeout. A client calling "
            "the dispatcher directly should drop idle connections sooner than this (httpx keeps them 5 s: "
            "`httpx.Limits(keepalive_expiry=2)`), or a request sent on one the dispatcher is closing fails with "
            "\"Server disconnected without sending a response\""
        ),
    ),
    Setting(
        "HEADER_TIMEOUT_SECONDS", "server", NUMBER, minimum=0.1, default="10",
        meaning=(
            "a connection's time to send one whole request (after opening, or after its previous answer plus the "
            "keep-alive); slower connections are closed ([security.md](security.md))"
        ),
    ),
    Setting(
        "WRITE_TIMEOUT_SECONDS", "server", NUMBER, minimum=0.1, default="30",
        meaning=(
            "a client's time to take some of an answer it stopped reading (once the socket's buffer is full); "
            "past it the connection is aborted, so a \"slow read\" holds nothing ([security.md](security.md)). A "
            "stream with nothing to send is not cut"
        ),
    ),
    Setting(
        "MAX_CONNECTIONS", "server", INTEGER, minimum=1, default="4000",
        meaning=(
            "connections open at once — API, bot channels and media sockets alike — and never more than half the "
            "process's descriptor limit (`ulimit -n`; the rest is for the store, the bots' pipes and files). One "
            "past it closes a connection that is not being answered: one that has not sent a whole first request "
            "head, else one idle between requests on a kept-alive connection, else one still owed its request's "
            "body (the oldest first in each), so a flood of connects closes its own sockets before a client's; "
            "only when nothing else is open is the newcomer answered `503 overloaded` and closed as it is "
            "accepted. Requests the app works on are capped an eighth below it (past that, a new request aborts "
            "the oldest one still owed its body, and only when there is none is it answered `503 overloaded`), "
            "but `/healthz`, bot channels and media sockets are not, so a flood of requests leaves them room. "
            "Keep it above `BOT_CHANNEL_MAX_CONNECTIONS` plus `SESSION_WAITS`, and raise the descriptor limit "
            "with it. The AWS stacks with the bot channel set it to 3 × `BOT_CHANNEL_MAX_CONNECTIONS` + 1,000 (at "
            "least 4,000; [pulumi.md](pulumi.md))"
        ),
    ),
    Setting(
        "LOG_LEVEL", "observability", ENUM, choices=("debug", "info", "warning", "error", "critical"), default="info",
        meaning="`debug`, `info`, `warning`, `error`, `critical`",
    ),
    Setting(
        "LOG_FORMAT", "observability", ENUM, choices=("text", "json"), default="text",
        meaning=(
            "`json`: one JSON object per line (`time`, `level`, `logger`, `message`, `replica`, `session_id`, "
            "`trace_id`, `release`, `exception`), uvicorn's lines included; the bot host reads it too (its lines "
            "carry `session_id`, `trace_id`, `machine_id`), and local bots inherit it. A local bot's stderr "
            "reaches the dispatcher's log line by line as `dispatcher.bot` records with its session and at the "
            "bot's own level (a traceback's lines at its error's), in either format; in JSON, a bot's line gives "
            "its `message`, `machine_id` and `exception` to the dispatcher's line rather than nesting in it. With "
            "`MACHINES=k8s` and `json`, every bot pod is given `LOG_FORMAT=json` too"
        ),
    ),
    Setting(
        "METRIC_LINES", "observability", ENUM, choices=("off", "emf", "json"), default="off",
        meaning=(
            "the metrics of `/metrics` also written to stdout, one JSON line per dimension set every "
            "`METRIC_LINES_SECONDS`, for a cloud's log pipeline to turn into metrics without a scraper: `emf` "
            "(CloudWatch embedded metric format; the AWS stack sets it), `json` (the same members without `_aws`, "
            "for Cloud Logging's log-based metrics; the GCP stack sets it), `off` (nothing computed or written). "
            "Counters are written as their increase since the last line, histograms as the embedded metric "
            "format's `Values`/`Counts` of bucket midpoints "
            "([operations.md](operations.md#where-the-metrics-come-from))"
        ),
    ),
    Setting(
        "METRIC_LINES_SECONDS", "observability", NUMBER, minimum=1, default="60",
        meaning=(
            "how often metric lines are written (at least 1); CloudWatch and Cloud Monitoring keep one-minute "
            "points, so less buys nothing there"
        ),
    ),
    Setting(
        "METRIC_NAMESPACE", "observability", STRING, default="voicefleet",
        meaning=(
            "the lines' CloudWatch namespace and their `metricNamespace` member (the stacks set "
            "`voicefleet/<stack>`): printable ASCII, at most 255 characters, not starting with `:` or `AWS/` "
            "(reserved for AWS's own)"
        ),
    ),
    Setting(
        "BOT_CHANNEL_TOKEN", "channel", STRING, secret=True,
        shown="generated per run (local)",
        meaning=(
            "the deployment secret of the bot control channel (≥ 32 characters; a secret: set it from the secret "
            "store, never on a command line). The dispatcher derives each machine's own channel credential from "
            "it and hands that to the machine at launch, as the machine's `BOT_CHANNEL_TOKEN`; no bot needs the "
            "deployment secret ([security.md](security.md)). A Kubernetes warm pool's bot has none: it dials with "
            "`BOT_IDENTITY=k8s` alone, and only the `agent-sandbox` mode admits such a hello "
            "([kubernetes.md](kubernetes.md#the-warm-path)). Unset in a cloud mode: no channel, no warm reserve, "
            "and no `webrtc` transport (cloud bots take their SmallWebRTC signalling over the channel)"
        ),
    ),
    Setting(
        "BOT_CHANNEL_PORT", "channel", INTEGER, minimum=1, maximum=65535,
        shown="unset",
        meaning=(
            "(1–65535, not `PORT`) a second port, on the same `HOST`, that serves only the bots' routes "
            "(`/bots/channel` and a call's `/bots/media/…`); `PORT` then answers them `404` (a WebSocket "
            "handshake there `403`, closed before it is accepted), and this port answers everything else `404` (a "
            "WebSocket `403`) (probes and the API stay on `PORT`). A request is told apart by the local port its "
            "connection arrived on, never by a header. Use it where a proxy forwards `PORT` from the internet and "
            "bots reach the dispatcher another way: the Kubernetes stack sets it, and its Ingress never routes it "
            "([kubernetes.md](kubernetes.md#the-warm-path)). Local bots dial it when set. Unset: `PORT` serves "
            "the bots' routes too"
        ),
    ),
    Setting(
        "BOT_CHANNEL_TLS_CERT_FILE", "channel", STRING,
        shown="unset",
        example="`/etc/voicefleet/channel-tls/tls.crt`",
        meaning=(
            "(with `BOT_CHANNEL_TLS_KEY_FILE` and `BOT_CHANNEL_PORT`) a PEM certificate chain: the channel's port "
            "then serves TLS, and bots dial `wss://`; `PORT` stays plain (its proxy terminates the clients' TLS). "
            "Read once at start: a renewed certificate is served by the next replica. The Kubernetes stack sets "
            "both from a Secret it mounts ([kubernetes.md](kubernetes.md#the-channels-tls)). Unset: a plain channel"
        ),
    ),
    Setting(
        "BOT_CHANNEL_TLS_KEY_FILE", "channel", STRING,
        shown="unset",
        example="`/etc/voicefleet/channel-tls/tls.key`",
        meaning=(
            "the private key of `BOT_CHANNEL_TLS_CERT_FILE`'s certificate, a PEM file (a mounted Secret's: "
            "never a value in the environment)"
        ),
    ),
    Setting(
        "BOT_CHANNEL_MAX_CONNECTIONS", "channel", INTEGER, minimum=1, default="1000",
        meaning=(
            "bot channels open at once (each live bot holds one); past it a bot's handshake is refused. The AWS "
            "stacks set it per replica from `maxConcurrentSessions + reserveMaxIdle` over `dispatcherCount - 1` "
            "replicas (`stacks/config/channel_capacity.py`)"
        ),
    ),
    Setting(
        "BOT_CHANNEL_MAX_IDENTITY_ONLY", "channel", INTEGER, minimum=1, maximum=1000, default="32",
        meaning=(
            "(1–1000) channel sockets with no credential (a Kubernetes warm pool's bots, which dial with their "
            "pod's identity alone: [kubernetes.md](kubernetes.md#the-warm-path)) whose hello is being checked at "
            "once; past it, or past `BOT_CHANNEL_IDENTITY_ONLY_PER_ADDRESS` such dials a minute from one address, "
            "the socket is closed `1013` with the reason. They never take one of `BOT_CHANNEL_MAX_CONNECTIONS`' "
            "channels until admitted"
        ),
    ),
    Setting(
        "BOT_CHANNEL_IDENTITY_ONLY_PER_ADDRESS", "channel", INTEGER, minimum=1, maximum=10000, default="5",
        meaning=(
            "(1–10000) channel sockets with no credential one remote address may open a minute. Each pool pod "
            "dials from an address of its own; raise it where the bots reach the channel through one address (an "
            "ingress controller, a NAT)"
        ),
    ),
    Setting(
        "TRANSPORTS", "media", LIST, choices=("daily", "webrtc"),
        shown="local `webrtc`; cloud `daily`",
        meaning=(
            "the transports sessions may use, comma-separated: `daily`, `webrtc`. Locally, `daily` needs "
            "`DAILY_API_KEY` (the dispatcher makes the rooms; Daily dial-in tried locally, "
            "[phone.md](phone.md#trying-it-locally)). A request for one that is not listed gets `400 "
            "transport_not_offered` naming those that are, what turns the one asked for on, and what to start "
            "with meanwhile; a bot whose Python lacks the one asked for ends naming its extra and the web "
            "transport it does serve"
        ),
    ),
    Setting(
        "DEFAULT_TRANSPORT", "media", ENUM, choices=("daily", "webrtc"),
        shown="the first of `TRANSPORTS`",
        meaning="what a start without `transport` (or `createDailyRoom`) gets",
    ),
    Setting(
        "TURN_URLS", "media", STRING,
        shown="unset",
        meaning=(
            "the TURN server's URLs, comma-separated, as clients should try them: "
            "`turn:turn.example.com:3478?transport=udp,turn:turn.example.com:3478?transport=tcp,turns:turn.example.com:443?transport=tcp`. "
            "Required in a cloud mode when `TRANSPORTS` has `webrtc`"
        ),
    ),
    Setting(
        "TURN_SHARED_SECRET", "media", STRING, secret=True,
        shown="unset",
        meaning=(
            "the TURN server's `static-auth-secret` (≥ 16 characters). **A secret**: from Secrets Manager / "
            "Secret Manager into the environment, never plain config. It never leaves the dispatcher: only "
            "passwords derived from it do "
            "([webrtc.md](webrtc.md#credentials-the-turn-rest-scheme-per-peer-short-lived))"
        ),
    ),
    Setting(
        "TURN_CREDENTIAL_TTL_SECONDS", "media", INTEGER, minimum=30, maximum=3600, default="600",
        meaning="lifetime of each issued credential, 30–3600 s",
    ),
    Setting(
        "TURN_CREDENTIALS_PER_KEY", "media", INTEGER, minimum=1, default="20",
        meaning=(
            "how many clients' TURN credentials one API key may hold before they expire; a WebRTC start past it "
            "is refused with `429 turn_credentials_exhausted` and `Retry-After` (until its oldest expires). "
            "Ending a session does not return its credential (the relay cannot revoke one), so this bounds one "
            "key's share of the relay: at most this × the relay's `user-quota` (10) new allocations per "
            "credential lifetime, a fifth of the managed relay's default `turnTotalQuota` (1000); keep it below "
            "`turnTotalQuota` / 10. The Pulumi stacks set it from the relay's quotas (half the relay, at most 20) "
            "or from `turnCredentialsPerKey`, and refuse a value that lets one key hold the whole relay "
            "([pulumi.md](pulumi.md#turn-relay-cloud-smallwebrtc-sessions-without-daily)). Kept in the store with "
            "`REDIS_URL`"
        ),
    ),
    Setting(
        "ICE_TRANSPORT_POLICY", "media", ENUM, choices=("relay", "all"),
        shown="cloud `relay`, local `all`",
        meaning=(
            "the **client's** policy, put in `iceConfig`: `relay` (both peers relay; nothing about the client's "
            "network reaches the bot) or `all` (the client may reach the bot's relay address from its own "
            "address: one relay leg instead of two, half the relay traffic). A cloud bot always relays"
        ),
    ),
    Setting(
        "BOT_PYTHON", "local", STRING,
        shown="the dispatcher's own interpreter",
        meaning=(
            "local mode: the Python that runs bots, e.g. your bot project's virtualenv (`.venv/bin/python`) when "
            "its dependencies are not voicefleet's; it needs Pipecat, and its `webrtc` extra (aiortc) for web "
            "sessions: without it a web session fails naming that extra, and the reserve's bots take phone calls "
            "only (with the `websocket` extra); it runs voicefleet's host from this checkout"
        ),
    ),
    Setting(
        "LOCAL_BOT_COMMAND", "local", STRING,
        shown="`<BOT_PYTHON> -m bot`",
        meaning=(
            "local mode: the command that runs a bot (the dispatcher adds `--transport … --max-duration …`; a "
            "cold bot's session id comes in `VOICEFLEET_SESSION_ID`, never on the command line, which every "
            "process on the host may read)"
        ),
    ),
    Setting(
        "LOCAL_STOP_GRACE_SECONDS", "local", NUMBER, minimum=0, default="5",
        meaning="local mode: SIGTERM → SIGKILL grace",
    ),
    Setting(
        "LOCAL_BOT_ENV", "local", STRING,
        shown="unset",
        meaning=(
            "local mode: comma-separated names of the variables your bot reads (its service keys and settings, "
            "e.g. `DEEPGRAM_API_KEY,OPENAI_API_KEY,CARTESIA_API_KEY`), passed from the dispatcher's environment "
            "to every local bot: the local counterpart of a stack's `botSecrets`. Nothing else of the "
            "dispatcher's environment reaches a bot but the system's (`PATH`, `HOME`, locale, `TZ`, proxies, CA "
            "bundles, `PYTHON*`, `OTEL_*` but `OTEL_EXPORTER_OTLP_*HEADERS`, a collector's key, which must be "
            "named here) and the bot host's own variables ([The bot](#the-bot)). The dispatcher's own secrets "
            "(`DISPATCHER_API_KEYS`, `BOT_CHANNEL_TOKEN`, `REDIS_*`, `SIP_EDGE_*`, `PHONE_TOKEN_SECRET`, `TURN_SHARED_SECRET`, "
            "`DAILY_API_KEY`, `DAILY_DIALIN_SECRET`, `FLY_API_TOKEN`, `WEBHOOK_SECRET`, the transfers' "
            "`TWILIO_API_KEY_SID` and `TWILIO_API_KEY_SECRET`) and the session's values "
            "cannot be named, nor can a cloud SDK's credential variable (`AWS_SECRET_ACCESS_KEY`, "
            "`GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_CLIENT_SECRET`, …: on your laptop the SDK reads your own "
            "login through `HOME`; a deployed bot's access is the stack's `botPermissions`): the dispatcher "
            "refuses to start, by the rule a stack's `botSecrets` follows "
            "([bring-your-bot.md](bring-your-bot.md#your-service-keys-botsecrets)). A carrier's token named here "
            "(a bot that hangs calls up needs `TWILIO_AUTH_TOKEN`) is every local bot's "
            "([security.md](security.md#local-bots))"
        ),
    ),
    Setting(
        "LOCAL_BOT_ISOLATION", "local", ENUM, choices=("auto", "required"), default="auto",
        meaning=(
            "local mode: `auto` gives each bot a Landlock sandbox of its own (Linux 5.13 or later with Landlock "
            "enabled) so it can read, trace or signal neither the dispatcher nor another bot, and starts bots "
            "without one, with a warning, where the kernel has none; `required` refuses to start there "
            "([security.md](security.md#local-bots))"
        ),
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "traces", STRING,
        shown="unset (no traces)",
        meaning=(
            "the collector's address: with `http/protobuf` its HTTP port, e.g. `http://localhost:4318` (spans go "
            "to `<it>/v1/traces`); with `grpc` its gRPC port, e.g. `http://localhost:4317` (`http://`: no TLS). "
            "With `MACHINES=k8s` every bot pod is given it, and the traces' own endpoint and the protocols, those "
            "set; one with a user or password in it (`https://user:password@…`) is refused there, since pod specs "
            "show it (the headers are the bots' Secret's to hold: "
            "[kubernetes.md](kubernetes.md#the-bots-logs-and-traces))"
        ),
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "traces", STRING,
        shown="unset",
        meaning="the full traces URL, instead of the one above",
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "traces", STRING, default="http/protobuf",
        meaning=(
            "`http/protobuf` or `grpc`, as the specification defines them (the signal's own variable wins). "
            "`grpc` needs `opentelemetry-exporter-otlp-proto-grpc` where it runs: without it the dispatcher stops "
            "with a message naming the package (a bot logs it and runs untraced). An endpoint on port 4317 left "
            "at the default protocol is logged at start-up: every export would fail"
        ),
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "traces", STRING, default="http/protobuf", row="OTEL_EXPORTER_OTLP_PROTOCOL",
    ),
    Setting(
        "OTEL_TRACES_EXPORTER", "traces", STRING, default="otlp",
        meaning=(
            "`console`: spans as JSON on the dispatcher's stdout and a bot's stderr (its stdout is its event "
            "contract); `none`: off"
        ),
    ),
    Setting(
        "OTEL_SDK_DISABLED", "traces", STRING,
        shown="unset",
        meaning="`true`: no traces, whatever else is set",
    ),
    Setting(
        "WEBHOOK_URL", "webhooks", STRING,
        shown="unset (none sent)",
        meaning=(
            "where the events are POSTed; set with `WEBHOOK_SECRET`. The final URL: a redirect is not followed (a "
            "`3xx` is a failed attempt)"
        ),
    ),
    Setting(
        "WEBHOOK_SECRET", "webhooks", STRING, secret=True,
        shown="unset",
        meaning=(
            "`whsec_` and at least 24 random bytes in base64 (e.g. `echo whsec_$(openssl rand -base64 32)`): a "
            "secret"
        ),
    ),
    Setting(
        "WEBHOOK_TIMEOUT_SECONDS", "webhooks", NUMBER, minimum=0.1, default="5",
        meaning=(
            "one delivery attempt; an answer other than 2xx, or none, is retried after 1, 2, 4, 8, 16 and 32 s, "
            "then logged and given up"
        ),
    ),
    Setting(
        "WEBHOOK_MAX_QUEUE", "webhooks", INTEGER, minimum=1, maximum=100000, default="1000",
        meaning=(
            "events waiting for delivery (with several replicas, in the store, all replicas' together); past it, "
            "an event is dropped and logged"
        ),
    ),
    Setting(
        # Most careful first: dispatcher/artifacts/rules.py ranks the policies in this order.
        "RECORDING", "recording", ENUM, choices=("off", "consent", "on"), default="off",
        meaning=(
            'the audio: `on` keeps every session as a two-channel WAV (caller left, bot right) with a report '
            'beside it, `consent` too once the caller has heard `RECORDING_ANNOUNCEMENT` (the call is kept from '
            "its end). Off by default, locally too: recording people is the operator's decision"
        ),
    ),
    Setting(
        "RECORDING_TRANSCRIPT", "recording", ENUM, choices=("off", "consent", "on"),
        shown='as `RECORDING`',
        meaning=(
            'the transcript, on its own (audio off and transcript on: no audio is '
            'uploaded, the transcript and report are kept)'
        ),
    ),
    Setting(
        "RECORDING_RULES", "recording", STRING,
        shown='unset',
        meaning=(
            'per API key name and per release, `;`-separated: `key:acme audio=consent days=30; release:v7 '
            'transcript=off`. A rule only lowers (the most careful of it and the defaults wins, field by field). '
            'A key name no API key has stops the start, naming the named keys (with `DISPATCHER_ADMIN_KEYS` set it '
            'is a warning: the rule applies to the runtime key of that name, [recording.md](recording.md)); a '
            'release the catalogue lacks is a warning, shown in `GET /status` under `recordings.unknown_releases`'
        ),
    ),
    Setting(
        "RECORDING_RETENTION_DAYS", "recording", INTEGER, minimum=0, maximum=36500, default="0",
        shown='`0` (kept until erased)',
        meaning=(
            "how long a session's objects are kept; carried in their keys (`retain-30d/…`) for the stacks' "
            'lifecycle rules'
        ),
    ),
    Setting(
        "RECORDING_REQUIRED", "recording", BOOLEAN, default="false",
        meaning=(
            '`true`: a session whose recording cannot be kept (the store cannot be written) is refused, `503 '
            "recording_unavailable` naming the store's fault; `false`: it runs unrecorded, `recording_skipped` on"
            ' its timeline'
        ),
    ),
    Setting(
        "RECORDING_ANNOUNCEMENT", "recording", STRING,
        shown='the one voicefleet ships (`bot/recording/announcement.wav`: "This call is recorded and transcribed.")',
        meaning=(
            "the bot's environment: the consent announcement, a WAV file of 16-bit PCM (any rate; stereo is mixed"
            " to mono), relative to the bot file's folder. One that is not audio fails `python -m bot --check` "
            "and a local dispatcher's start (locally, pass it to the bots with "
            '`LOCAL_BOT_ENV=RECORDING_ANNOUNCEMENT`)'
        ),
    ),
    Setting(
        "RECORDING_REDACT", "recording", STRING,
        shown='unset',
        meaning=(
            "the bot's environment: `module:function` in your project, called on each turn's text before the "
            'transcript leaves the bot; one that raises or returns anything but a `str` has the transcript '
            'withheld (the report says why)'
        ),
    ),
    Setting(
        "RECORDING_DESTINATION", "recording", STRING,
        shown="`recordings` (a folder beside the dispatcher)",
        meaning=(
            "a folder; `s3://bucket/prefix` (S3, or an S3-compatible store with `AWS_ENDPOINT_URL_S3`: the "
            "dispatcher's own AWS credentials sign and complete the uploads); or `gs://bucket/prefix` (Google Cloud "
            "Storage: the dispatcher's own Application Default Credentials, a service account, do; "
            "[recording.md](recording.md#what-the-dispatcher-needs-on-google-cloud-storage)); or "
            "`https://<account>.blob.core.windows.net/<container>/<prefix>` (Azure Blob Storage: the dispatcher's "
            "Entra identity, the one `AZURE_CLIENT_ID` or the host's managed identity gives it, signs user delegation "
            "SAS; an emulator's `http(s)://<host>:<port>/<account>/<container>/<prefix>` too). One it cannot write is "
            "said at start-up and in `GET /status`, and calls run unrecorded"
        ),
    ),
    Setting(
        "AWS_ENDPOINT_URL_S3", "recording", STRING,
        shown="`AWS_ENDPOINT_URL`, else AWS",
        meaning=(
            "endpoint override for the recordings' S3 store (MinIO, R2, tests: moto); addressed path-style when "
            "set. The k8s stack sets it, with the store's `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, from a "
            "Secret by reference"
        ),
    ),
    Setting(
        "STORAGE_EMULATOR_HOST", "recording", STRING,
        shown="Google Cloud Storage",
        meaning=(
            "endpoint override for a `gs://` recordings store (an emulator, tests), the variable Google's own "
            "clients read"
        ),
    ),
    Setting(
        "RECORDING_CA_BUNDLE", "recording", STRING,
        shown="the system's",
        meaning=(
            "a private CA (PEM) the dispatcher trusts for an Azure Blob destination and its token endpoint: an "
            "emulator's self-signed certificate, Azure Stack Hub"
        ),
    ),
    Setting(
        "RECORDING_CHECKPOINT_SECONDS", "recording", NUMBER, minimum=1, default="20",
        meaning=(
            "the bot uploads the part still filling this often: a bot that dies loses at most about this much of "
            "its call"
        ),
    ),
    Setting(
        "RECORDING_PART_URL_SECONDS", "recording", NUMBER, minimum=30, maximum=3600, default="300",
        meaning="how long a part's upload URL, handed to the bot, may be used (30 to 3600)",
    ),
    Setting(
        "RECORDING_DOWNLOAD_URL_SECONDS", "recording", NUMBER, minimum=10, maximum=604800, default="300",
        meaning=(
            "how long a download URL from `GET /sessions/{id}/artifacts` may be used (10 to 604800, S3's week)"
        ),
    ),
    Setting(
        "RECORDING_END_GRACE_SECONDS", "recording", NUMBER, minimum=0, default="60",
        meaning=(
            "a recorded bot's channel gone without its end: how long it has to dial again before its recording is "
            "completed as it is (at once when its provider says the machine ended)"
        ),
    ),
    Setting(
        "SHUTDOWN_GRACE_SECONDS", "store", INTEGER, minimum=1, maximum=3600, default="90",
        meaning=(
            "on SIGTERM, how long requests in flight may finish before the process exits (ECS sends SIGKILL 120 s "
            "after SIGTERM at most); see [replicas.md](replicas.md#deploys-and-failures)"
        ),
    ),
    Setting(
        "DISPATCHER_PEERS", "store", STRING,
        shown="—",
        meaning=(
            "no longer read: a value (even an empty one) stops the dispatcher at start-up with a message that "
            "names `REDIS_URL`, because replicas now find each other's bots through the store alone"
        ),
    ),
    Setting(
        "REDIS_URL", "store", STRING, secret=True,
        shown="unset",
        meaning=(
            "a Redis-protocol server (Valkey, Redis, ElastiCache, Memorystore) shared by every replica: "
            "`redis://host:6379/0`, `rediss://user:password@host:6379` for TLS. It carries the password, or "
            "`REDIS_PASSWORD` does (set it from the secret store): without one the dispatcher refuses to start "
            "(local bots reach a store on loopback), unless `REDIS_AUTH=gcp-iam`. Needs `DISPATCHER_API_KEYS`: "
            "without keys each process draws its own random owner key, so replicas would give one "
            "`Idempotency-Key` two sessions and could not read each other's; the dispatcher refuses to start with "
            "`REDIS_URL` and no keys, in one line naming both"
        ),
    ),
    Setting(
        "REDIS_PASSWORD", "store", STRING, secret=True,
        shown="unset",
        meaning=(
            "the store's password when it is not in the URL (a secret: the AWS stack passes it from Secrets "
            "Manager)"
        ),
    ),
    Setting(
        "REDIS_MESSAGE_SECRET", "store", STRING, secret=True,
        shown="— (required with `REDIS_URL`)",
        meaning=(
            "the key that signs what replicas send each other through the store (relayed signalling, a phone "
            "call's frames): at least 32 characters, the same at every replica. A replica acts only on a message "
            "signed with it, for its own channel, sent within the last 30 s and not seen before; whoever else may "
            "publish on the store (its password, a neighbour on a shared Redis) is refused and counted in "
            "`voicefleet_store_messages_refused_total`. **A secret**, from the secret store; the Pulumi stacks "
            "generate it next to the store's password. No bot ever gets it (`REDIS_*` is the dispatcher's alone). "
            "Set `REDIS_URL` without it and the dispatcher refuses to start, in one line naming it "
            "([security.md](security.md#who-holds-what))"
        ),
    ),
    Setting(
        "REDIS_ACCEPTED_MESSAGE_SECRET", "store", STRING, secret=True,
        shown="—",
        meaning=(
            "only while `REDIS_MESSAGE_SECRET` changes: the change's other secret (at least 32 characters, not "
            "the same), which the replica opens messages and outbox entries with but never seals with, so "
            "replicas of two deploys running side by side understand each other; the stacks set it from "
            "`storeAcceptedMessageSecret` ([pulumi.md](pulumi.md#changing-the-replicas-message-secret)). **A "
            "secret**, from the secret store; a bad value stops the dispatcher in one line"
        ),
    ),
    Setting(
        "REDIS_AUTH", "store", ENUM, choices=("password", "gcp-iam"), default="password",
        meaning=(
            "`gcp-iam`: sign in to Memorystore for Valkey with the service account's own access token (IAM "
            "authentication)"
        ),
    ),
    Setting(
        "REDIS_CA_CERT", "store", STRING,
        shown="unset",
        meaning=(
            "PEM certificates of the store's CA, for `rediss://` to a store whose certificate no public CA signs "
            "(Memorystore's per-instance CA; its endpoint is an IP address, so the name is not checked)"
        ),
    ),
    Setting(
        "REPLICA_ID", "store", STRING,
        shown="random per process",
        meaning="this replica's name in the store (letters, digits, `-`, `_`; at most 64)",
    ),
    Setting(
        "REDIS_TIMEOUT_SECONDS", "store", NUMBER, minimum=0.01, default="0.5",
        meaning="the most one store call may take, connecting included; then it counts as unreachable",
    ),
    Setting(
        "REDIS_LEASE_SECONDS", "store", NUMBER, minimum=1, default="15",
        meaning=(
            "how long a replica's and a session owner's record outlive a replica that stopped renewing them"
        ),
    ),
    Setting(
        "REDIS_MAX_CONNECTIONS", "store", INTEGER, minimum=2, default="64",
        meaning="the replica's connection pool (a call waits for a free one, within its timeout)",
    ),
    Setting(
        "REDIS_KEY_PREFIX", "store", STRING, default="{voicefleet}:",
        meaning=(
            "prefix of every key and channel; the braces keep every key in one cluster slot. Keep the default "
            "with the AWS stack: its store user may touch `{voicefleet}:` keys and channels only "
            "([replicas.md](replicas.md#in-the-stacks-and-what-it-costs))"
        ),
    ),
    Setting(
        "REGION", "regions", STRING,
        shown="unset",
        meaning=(
            "this region's name: a lowercase letter, then up to 19 lowercase letters, digits or hyphens (`eu`, "
            "`us-east`). Needs `DISPATCHER_API_KEYS`, the same keys in every region"
        ),
    ),
    Setting(
        "REGIONS", "regions", STRING,
        shown="unset",
        meaning=(
            "every region's public dispatcher URL, this one included: "
            "`eu=https://eu.voice.example.com,us=https://us.voice.example.com` (https; http only on loopback). "
            "Every region lists the same URLs: a region that answers with a different URL for a region both list "
            "stops this one from starting; a region one side does not list yet is only logged, so regions can be "
            "added one deploy at a time"
        ),
    ),
    Setting(
        "REGION_SECRET", "regions", STRING, secret=True,
        shown="unset",
        meaning=(
            "the key every region signs what it asks another with (HMAC-SHA256 over the method, path, body "
            "digest, time and both regions' names; 30 s of clock skew; each request taken once): at least 32 "
            "characters, the same in every region. **A secret**, from the secret store"
        ),
    ),
    Setting(
        "REGION_HOLD_FOR_NEIGHBOURS", "regions", BOOLEAN, default="0",
        meaning=(
            "`1`: the planner also holds, on top of its own stock, its share of what a busier region within "
            "`REGION_SPILL_BUDGET_MS` lacks of its own need (a burst past its provider's creates a second), so "
            "that region's starts spill to warm bots here; costs idle bots at lower loads "
            "([regions.md](regions.md#capacity-that-follows-the-sun), \"Holding for a busy neighbour\")"
        ),
    ),
    Setting(
        "REGION_SPILL_BUDGET_MS", "regions", NUMBER, minimum=0, default="100",
        meaning=(
            "the round trip (measured, ms) within which a busier region's bots count toward this region's "
            "reserve: the planner keeps fewer warm bots here while such a neighbour holds, beyond its own "
            "callers' need, bots to take the spill-over (the pair keeps one pooled stock), never below its own "
            "expected starts over the neighbour's refill "
            "([regions.md](regions.md#capacity-that-follows-the-sun)). `0`: this region leans on no neighbour"
        ),
    ),
    Setting(
        "REGION_ACCEPTED_SECRET", "regions", STRING, secret=True,
        shown="unset",
        meaning=(
            "only while `REGION_SECRET` changes: the change's other secret (at least 32 characters, not the "
            "same), which requests and answers from other regions are checked against but never signed with, so "
            "regions deployed with either secret understand each other "
            "([regions.md](regions.md#changing-the-regions-secret)); the stacks set it from "
            "`regionAcceptedSecret`. **A secret**, from the secret store"
        ),
    ),
    Setting(
        "PHONE_PUBLIC_URL", "phone", STRING,
        shown="unset",
        meaning=(
            "the dispatcher's public base URL as carriers were told it (`https://calls.example.com`); carriers' "
            "signatures cover it. With several regions stream URLs and call tokens name the region's own "
            "`REGIONS` URL instead ([regions.md](regions.md#phone-calls-across-regions)). Calls placed through "
            "Twilio need it (or `REGIONS`): their stream and callbacks go there, never to a request's `Host`"
        ),
    ),
    Setting(
        "PHONE_TOKEN_SECRET", "phone", STRING, secret=True,
        shown="the bot credential, else random per process",
        meaning="the key of the one-time call tokens (≥ 32 characters); every replica needs the same one",
    ),
    Setting(
        "TWILIO_AUTH_TOKEN", "phone", STRING, secret=True,
        shown="unset",
        meaning="checks `X-Twilio-Signature` on Twilio's webhooks and WebSocket upgrades",
    ),
    Setting(
        "TWILIO_ACCOUNT_SID", "phone", STRING,
        shown="unset",
        meaning=(
            "the Twilio account (`AC…`) whose live calls the dispatcher may update to transfer them "
            "([phone.md](phone.md#handing-a-call-to-a-person)), with `TWILIO_AUTH_TOKEN` or an API key; "
            "unset, transfers are refused"
        ),
    ),
    Setting(
        "TWILIO_API_KEY_SID", "phone", STRING, secret=True,
        shown="unset",
        meaning="a Twilio API key (`SK…`) the dispatcher transfers calls with instead of the auth token, "
                "with `TWILIO_API_KEY_SECRET`: revocable on its own",
    ),
    Setting(
        "TWILIO_API_KEY_SECRET", "phone", STRING, secret=True,
        shown="unset",
        meaning="the secret of `TWILIO_API_KEY_SID`",
    ),
    Setting(
        "TWILIO_REGION", "phone", ENUM, choices=("us1", "ie1", "au1"),
        shown="unset (US1)",
        meaning=(
            "the Twilio region the account's calls are in, as Twilio's SDKs name it: every request to Twilio's "
            "REST API (placing, transferring and reading calls) goes to that region's host, with credentials "
            "made in it; `ie1` and `au1` need `TWILIO_EDGE`; US1 is the default, left unset. With "
            "`MACHINES=k8s` every bot pod is given it and `TWILIO_EDGE` too, for Pipecat's hang-up "
            "([phone.md](phone.md#a-twilio-account-outside-the-us))"
        ),
    ),
    Setting(
        "TWILIO_EDGE", "phone", ENUM, choices=("dublin", "sydney"),
        shown="unset",
        meaning=(
            "the edge of `TWILIO_REGION`, as Twilio's SDKs name it: `dublin` with `ie1`, `sydney` with `au1` "
            "(the API is then `api.dublin.ie1.twilio.com`, `api.sydney.au1.twilio.com`)"
        ),
    ),
    Setting(
        "TWILIO_API_URL", "phone", STRING,
        shown="unset: `https://api.twilio.com`, or the host of `TWILIO_REGION` and `TWILIO_EDGE`",
        meaning=(
            "where Twilio's REST API is reached, in place of the host `TWILIO_REGION` names (a test's fake): "
            "`https://`, or `http://` to a loopback host only, since each request carries the account's "
            "credentials"
        ),
    ),
    Setting(
        "PHONE_TRANSFER_TARGETS", "phone", STRING,
        shown="unset",
        meaning=(
            "where a call may be handed to a person ([phone.md](phone.md#handing-a-call-to-a-person)), "
            "comma-separated: numbers in E.164 (`+14155550123`), prefixes (`+1415*`) and SIP hosts "
            "(`pbx.example.com`); unset, every transfer is refused `403 transfer_targets_unset`"
        ),
    ),
    Setting(
        "PHONE_TRANSFER_TIME_LIMIT_SECONDS", "phone", INTEGER, minimum=1, maximum=86400, default="3600",
        meaning=(
            "a transferred call's longest, in seconds (`<Dial timeLimit>`): Twilio then hangs up, as the SIP edge "
            "does both legs of a call it bridged"
        ),
    ),
    Setting(
        "TWILIO_SIGNED_STREAMS", "phone", BOOLEAN, default="0",
        meaning=(
            "`1`: a Twilio stream may be admitted by its upgrade's signature alone (a TwiML Bin naming "
            "`/ws/twilio`), once per signature ([phone.md](phone.md)); off, only a one-time token opens one"
        ),
    ),
    Setting(
        "PHONE_HANDSHAKE_SECONDS", "phone", INTEGER, minimum=1, default="10",
        meaning=(
            "a carrier stream that has not sent its first two messages by then is closed before any session "
            "starts"
        ),
    ),
    Setting(
        "PHONE_SILENCE_SECONDS", "phone", INTEGER, minimum=1, default="10",
        meaning=(
            "past its handshake, a carrier stream that sends no audio (`media` event or binary frame) for this "
            "long is closed (`1008`) and its session stopped"
        ),
    ),
    Setting(
        "PHONE_MAX_FRAMES_PER_SECOND", "phone", INTEGER, minimum=50, default="250",
        meaning=(
            "frames a second each side of a relayed call may send (≥ 50; carriers send 50), five seconds' worth "
            "at once, beside 1 MiB a second (one second's at once); a side past either is closed with `1008` and "
            "the call ends ([phone.md](phone.md#limits))"
        ),
    ),
    Setting(
        "TELNYX_PUBLIC_KEY", "phone", STRING,
        shown="unset",
        meaning="Telnyx's Ed25519 public key, which checks its signed webhooks",
    ),
    Setting(
        "TELNYX_TRANSFER_API_KEY", "phone", STRING, secret=True,
        shown="unset",
        meaning=(
            "a Telnyx API key the dispatcher updates its Telnyx calls with to transfer them "
            "([phone.md](phone.md#handing-a-call-to-a-person)) and places calls out with "
            "([phone.md](phone.md#calling-out)), with `TELNYX_PUBLIC_KEY`; unset, Telnyx "
            "transfers and calls out are refused. The dispatcher's alone: no bot is given it (`LOCAL_BOT_ENV` and a stack's "
            "bot secrets refuse the name); a bot's own `TELNYX_API_KEY`, for Pipecat's hang-up, is another key"
        ),
    ),
    Setting(
        "TELNYX_API_URL", "phone", STRING, default="https://api.telnyx.com",
        meaning=(
            "where Telnyx's REST API is reached for transfers and calls out (a test's fake): the server alone, "
            "without Telnyx's `/v2` (the dispatcher adds the path); `https://`, or `http://` to a loopback host "
            "only, since each request carries the API key"
        ),
    ),
    Setting(
        "PLIVO_AUTH_TOKEN", "phone", STRING, secret=True,
        shown="unset",
        meaning="checks Plivo's V3 signatures; with `PLIVO_AUTH_ID`, transfers Plivo calls",
    ),
    Setting(
        "PLIVO_AUTH_ID", "phone", STRING,
        shown="unset",
        meaning=(
            "the Plivo account's Auth ID: with `PLIVO_AUTH_TOKEN` and `PHONE_PUBLIC_URL`, the dispatcher transfers "
            "its Plivo calls ([phone.md](phone.md#handing-a-call-to-a-person)); unset, Plivo transfers are refused"
        ),
    ),
    Setting(
        "PLIVO_API_URL", "phone", STRING, default="https://api.plivo.com",
        meaning=(
            "where Plivo's REST API is reached for transfers (a test's fake): the server alone, without Plivo's "
            "`/v1` (the dispatcher adds the path); `https://`, or `http://` to a loopback host only, since each "
            "request carries the auth token"
        ),
    ),
    Setting(
        "EXOTEL_API_KEY", "phone", STRING, secret=True,
        shown="unset",
        meaning="Exotel's credentials, set together or not at all: the Voicebot applet's stream presents them "
                "(`wss://KEY:TOKEN@…/ws/exotel`), and the Connect applet URL an Exotel transfer uses is derived from them "
                "([phone.md](phone.md#an-exotel-call))",
    ),
    Setting(
        "EXOTEL_API_TOKEN", "phone", STRING, secret=True, row="EXOTEL_API_KEY",
        shown="unset",
    ),
    Setting(
        "EXOTEL_MAX_CALLS", "phone", INTEGER, minimum=1,
        shown="half of `KEY_SESSION_SHARE` × `MAX_CONCURRENT_SESSIONS`, at least 1",
        meaning=(
            "calls admitted by Exotel's reusable Basic credential at once, for the deployment (past it: closed "
            "`1011` before a start)"
        ),
    ),
    Setting(
        "DAILY_DIALIN_SECRET", "phone", STRING, secret=True,
        shown="unset",
        meaning=(
            "the last segment of the Daily dial-in webhook's URL (`/phone/daily/dialin/{secret}`, ≥ 32 letters, "
            "digits, `-`, `_`); unset: no dial-in (except keyless local). With several regions, the same secret "
            "in every region: a dial-in a region cannot start warm is relayed to another on the same path "
            "([regions.md](regions.md#phone-calls-across-regions))"
        ),
    ),
    Setting(
        "DAILY_WEBHOOK_SECRET", "phone", STRING, secret=True,
        shown="unset",
        meaning=(
            "the `hmac` secret (BASE-64, as Daily answers `POST /webhooks`) of the Daily webhook pointed at "
            "`/phone/daily/webhook`: its signed `dialout.*` events tell a warm transfer's person answered, its "
            "`calltransfer.*` events a cold one's (and settle one whose answer was lost: "
            "[phone.md](phone.md#daily-dial-in-calls-handed-to-a-person)); unset: "
            "a Daily dial-in call's warm transfer is refused `409 warm_unsupported`; with several regions, the same "
            "in every region (each relays another region's events there) "
            "([phone.md](phone.md#a-warm-transfer-of-a-daily-dial-in-call))"
        ),
    ),
    Setting(
        "DAILY_DIALOUT_CALLER_ID", "phone", STRING,
        shown="unset",
        meaning=(
            "the number a Daily dial-in call's transfer to a number (warm or cold) shows the person it calls: the "
            "`id` (a UUID) of a "
            "number bought on the Daily domain, as `GET /purchased-phone-numbers` lists it, not the number "
            "itself (Daily's `callerId`); unset: Daily picks one of the domain's numbers at random. Not used for "
            "a SIP target "
            "([phone.md](phone.md#a-warm-transfer-of-a-daily-dial-in-call))"
        ),
    ),
    Setting(
        "WHATSAPP_ACCESS_TOKEN", "phone", STRING, secret=True,
        shown="unset",
        meaning=(
            "the WhatsApp Business token (a system user's, with `whatsapp_business_messaging`) the dispatcher "
            "answers, rejects and hangs up calls with through the Graph API; set with the other three "
            "`WHATSAPP_` settings or none ([phone.md](phone.md#whatsapp-calls)); no bot ever gets it"
        ),
    ),
    Setting(
        "WHATSAPP_APP_SECRET", "phone", STRING, secret=True,
        shown="unset",
        meaning="the Meta app's secret, which checks each webhook's `X-Hub-Signature-256` (unsigned: 401, badly signed: 403)",
    ),
    Setting(
        "WHATSAPP_VERIFY_TOKEN", "phone", STRING, secret=True,
        shown="unset",
        meaning="the verify token typed in the Meta app's webhook settings (`GET /phone/whatsapp` answers its `hub.challenge`)",
    ),
    Setting(
        "WHATSAPP_NUMBERS", "phone", STRING,
        shown="unset",
        example="`106540352242922=support@stable`",
        meaning=(
            "the business phone numbers whose calls are taken, comma-separated `PHONE_NUMBER_ID=KEY_NAME[@RELEASE]`: "
            "each number's calls are sessions of that API key (by its name), pinned to that release (else the "
            "key's default); a keyless local dispatcher takes a bare `PHONE_NUMBER_ID`"
        ),
    ),
    Setting(
        "WHATSAPP_GRAPH_URL", "phone", STRING, default="https://graph.facebook.com/v23.0",
        meaning=(
            "the Graph API and version calls are answered through (a test's fake: `http://` to a loopback host "
            "only, since each request carries the WhatsApp token)"
        ),
    ),
    Setting(
        "PHONE_MAX_WAIT_SECONDS", "phone", NUMBER, minimum=0, default="3",
        meaning=(
            "with several regions: a carrier's webhook whose call's bot would start cold here past this many "
            "seconds (no idle bot), or that finds this region at `MAX_CONCURRENT_SESSIONS`, hands the call to the "
            "nearest region that can take it ([regions.md](regions.md#phone-calls-across-regions)); a Daily "
            "dial-in likewise; `inf`: only at the cap"
        ),
    ),
    Setting(
        "SIP_EDGE_URL", "phone", STRING,
        shown="unset",
        meaning=(
            "the SIP edge's control API (`http://10.0.1.5:5080`, its `control_port`): `POST /calls` hands it the "
            "calls to place through its trunks ([sip.md](sip.md#outbound-calls)); several edges comma-separated, "
            "each with credentials of its own derived for its URL ([sip.md](sip.md#edge-credentials)): a call goes "
            "to the first that takes it, a transfer to the edge holding the call ([sip.md](sip.md#several-edges)); "
            "unset: `POST /calls` answers 503"
        ),
    ),
    Setting(
        "SIP_EDGE_SECRET", "phone", STRING, secret=True,
        shown="unset",
        meaning=(
            "the deployment secret (≥ 32 characters) each SIP edge's two credentials are derived from, for its "
            "control URL: the dispatcher alone holds it, an edge holds its own credential and control key "
            "(`python -m dispatcher.phone.edge_credentials URL`: [sip.md](sip.md#edge-credentials)). Needed for "
            "outbound calls and for a trunk's price on its calls' costs, which the dispatcher takes from the edge "
            "alone ([sip.md](sip.md#what-a-call-costs))"
        ),
    ),
    Setting(
        "SIP_CALL_MAX_WAIT_SECONDS", "phone", NUMBER, minimum=0, maximum=3600, default="5",
        meaning=(
            "how long `POST /calls` waits for its trunk's pace (the trunk's `cps`, counted across replicas and "
            "regions); a call that would wait longer is refused `429` with `Retry-After`"
        ),
    ),
    *_calls_out("TWILIO", "Twilio", "through Twilio's API (the account's CPS, Twilio's default 1)"),
    Setting(
        "CALLS_DO_NOT_CALL", "phone", LIST,
        shown="none", example="`+14155550100,+14155550101`",
        meaning=(
            "numbers (E.164) no campaign calls: their rows are skipped and counted `skipped`, never placed "
            "([phone.md](phone.md#campaigns)); with `CALLS_DO_NOT_CALL_FILE`, both lists count"
        ),
    ),
    Setting(
        "CALLS_DO_NOT_CALL_FILE", "phone", STRING,
        shown="unset", example="`/etc/voicefleet/do-not-call.txt`",
        meaning=(
            "a file of numbers no campaign calls, one E.164 number a line (`#` begins a comment), read at start-up: "
            "a line that is no number stops the dispatcher with its line number"
        ),
    ),
    Setting(
        "CAMPAIGN_LEASE_SECONDS", "phone", NUMBER, minimum=2, maximum=600, default="30",
        meaning=(
            "how long a replica holds a campaign's row it is calling without renewing it (every third of it): a "
            "replica that dies gives its rows to another one after this long, their calls followed, never placed twice"
        ),
    ),
    Setting(
        "CAMPAIGN_MAX_LIVE_PER_KEY", "phone", INTEGER, minimum=1, maximum=100_000, default="100",
        meaning=(
            "campaigns one key may have not finished (running or stopped) at once: `POST /campaigns` past it is "
            "answered `429 too_many_campaigns`; a campaign stopped and never resumed counts until it finishes or "
            "its records expire (30 days after its last rows were added)"
        ),
    ),
    Setting(
        "CAMPAIGN_MAX_ROWS_PER_KEY", "phone", INTEGER, minimum=1, maximum=100_000_000, default="1000000",
        meaning=(
            "rows one key's campaigns may hold in the store together (finished ones included, until their records "
            "expire 30 days after their last rows were added): rows past it are refused `429 too_many_rows_kept`; "
            "it bounds the store's memory one key can take"
        ),
    ),
    Setting(
        "TELNYX_ACCOUNT_SID", "phone", STRING,
        shown="unset",
        meaning=(
            "the Telnyx account (its id, a UUID) `POST /calls` places calls through with `carrier: telnyx` "
            "([phone.md](phone.md#calling-out)), with `TELNYX_APPLICATION_SID`, `TELNYX_TRANSFER_API_KEY` and "
            "`TELNYX_PUBLIC_KEY`; unset, such calls are refused `503`. Set, a Telnyx warm transfer's callbacks "
            "that name another account are refused `400` (unset: their account is not checked)"
        ),
    ),
    Setting(
        "TELNYX_APPLICATION_SID", "phone", STRING,
        shown="unset",
        meaning=(
            "the TeXML application a call placed through Telnyx goes out with (its outbound voice profile "
            "places it): the create's `ApplicationSid`; a Telnyx call's warm transfer calls the person with it "
            "too (unset: `409 transfer_not_configured`)"
        ),
    ),
    *_calls_out("TELNYX", "Telnyx", "through Telnyx's TeXML API (what the account's outbound voice profile "
                "allows)"),
    Setting(
        "PHONE_DRAIN_SECONDS", "phone", INTEGER, minimum=0, shown="`MAX_SESSION_SECONDS`",
        meaning=(
            "on SIGTERM with calls in flight: how long they may go on before the dispatcher exits (new calls are "
            "refused, `/healthz` answers 503 meanwhile); `0` exits at once"
        ),
    ),
    Setting(
        "PHONE_CARRIER_RECORDING", "phone", STRING,
        shown="off",
        example="`twilio,telnyx`",
        meaning=(
            "`on` or a list of `twilio`, `telnyx`: their answer also starts the carrier's own dual-channel "
            "recording, linked in `GET /sessions/{id}/artifacts` when its signed status callback says it is "
            "complete; needs the carrier's signing credential, and only sessions whose recording policy is `on` "
            "([recording.md](recording.md#the-carriers-own-copy))"
        ),
    ),
    Setting(
        "DAILY_RECORDINGS_BUCKET", "phone", STRING,
        shown="unset",
        example="`bucket=acme-rec,region=us-west-2,role=arn:aws:iam::123456789012:role/daily-recordings`",
        meaning=(
            "Daily's custom S3 bucket (versioned) and the role Daily assumes to write it: a start may then ask for "
            "`dailyRoomProperties.enable_recording: \"cloud\"` and `enable_transcription_storage`, set on the room "
            "with `recordings_bucket`/`transcription_bucket`; otherwise a 422 "
            "([recording.md](recording.md#dailys-cloud-recording))"
        ),
    ),
    Setting(
        "DAILY_ALLOW_DIALOUT", "phone", BOOLEAN, default="0",
        meaning=(
            "`1`: a start may ask for `dailyRoomProperties.enable_dialout` (the bot dials phone numbers, which "
            "costs money); otherwise a 422"
        ),
    ),
    Setting(
        "MODEL_SERVICE_URL", "models", STRING, example="http://moshi.internal:8998",
        meaning=(
            "the shared model service's base URL: its free streams are read at `/api/capacity` "
            "(`{\"free\": n, \"total\": N}`), each start is admitted against them, and `GET /status` shows them "
            "under `model_service`. Unset: no bot uses one"
        ),
    ),
    Setting(
        "MODEL_SERVICE_READ_SECONDS", "models", NUMBER, minimum=0.2, maximum=60, default="2",
        meaning=(
            "how often its capacity is read (each read: a 1 s timeout, 3 tries within the interval); an answer "
            "older than three intervals, a failed read or an answer that is no capacity (negative, not whole, "
            "more free than total) is unknown, and a start is refused `503` `model_service_unavailable`"
        ),
    ),
    Setting(
        "MODEL_SERVICE_CONNECT_SECONDS", "models", NUMBER, minimum=1, maximum=600, default="10",
        meaning=(
            "how long a start admitted here counts against the free streams before the service's own count "
            "shows its bot's stream (about the time a bot takes to connect); past the free streams a start is "
            "refused `503` `model_service_capacity` + `Retry-After`, naming the service and its free streams"
        ),
    ),
    Setting(
        # The rows of dispatcher/machines/gpu.py's table, one each (tests/dispatcher/machines/test_gpu.py).
        "BOT_GPU", "gpu", ENUM,
        choices=("nvidia-t4", "nvidia-l4", "nvidia-a10", "nvidia-l40s", "nvidia-a100-40gb", "nvidia-h100"),
        shown="— (CPU only)",
        example="`nvidia-l4`",
        meaning=(
            "the bots' GPU. Compute Engine: a T4 is attached to an `n1-*` VM (`guestAccelerators`), an L4, A100 "
            "or H100 comes with its `g2-*`, `a2-*` or `a3-*` machine type, so `GCE_MACHINE_TYPE` must be of that "
            "family, and every GPU VM terminates on host maintenance (GPUs do not live-migrate). Cerebrium: the "
            "app's `cerebrium.toml` `compute` ([providers.md](providers.md#gpus-bot_gpu)). Modal: its `gpu=` "
            "type. ECS Fargate, Fly and local bots have none: the dispatcher refuses to start with `BOT_GPU` set "
            "there"
        ),
    ),
    Setting(
        "BOT_GPU_COUNT", "gpu", INTEGER, minimum=1, maximum=8, default="1",
        example="`2`",
        meaning=(
            "GPUs per bot where they are attached (Compute Engine N1, Modal); a G2/A2/A3 machine type fixes its "
            "own count, so anything but 1 is refused there"
        ),
    ),
    Setting(
        "DAILY_API_KEY", "daily", STRING, secret=True,
        shown="— (required)",
        example="`…`",
        meaning="REST API key; also the HS256 key of the self-signed meeting tokens",
    ),
    Setting(
        "DAILY_API_URL", "daily", STRING, default="https://api.daily.co/v1",
        example="`http://127.0.0.1:9000/v1`",
        meaning="endpoint override (tests)",
    ),
    Setting(
        "DAILY_ROOM_PREFIX", "daily", STRING, default="vf-",
        example="`prod-`",
        meaning="room name = prefix + session id",
    ),
    Setting(
        "DAILY_BOT_JOIN_SECONDS", "daily", INTEGER, minimum=10, default="600",
        example="`300`",
        meaning="the bot must *join* within this (covers a cold start)",
    ),
    Setting(
        "DAILY_USER_JOIN_SECONDS", "daily", INTEGER, minimum=10, default="300",
        example="`120`",
        meaning="the caller must *join* within this",
    ),
    Setting(
        "DAILY_TIMEOUT_SECONDS", "daily", NUMBER, minimum=0.1, default="5",
        example="",
        meaning="per HTTP call",
    ),
    Setting(
        "DAILY_RETRY_DEADLINE_SECONDS", "daily", NUMBER, minimum=0.1, default="8",
        example="",
        meaning="all attempts of one operation",
    ),
    Setting(
        "DAILY_RATE", "daily", NUMBER, minimum=0.001, default="20",
        example="",
        meaning="client-side bucket for Daily calls",
    ),
    Setting(
        "DAILY_BURST", "daily", INTEGER, minimum=1, default="20", row="DAILY_RATE",
        example="",
    ),
    Setting(
        "DAILY_MAX_WAIT", "daily", NUMBER, minimum=0, default="2", row="DAILY_RATE",
        example="",
    ),
    Setting(
        "DAILY_DELETE_RATE", "daily", NUMBER, minimum=0.001, default="2",
        example="",
        meaning="room deletes (Daily allows ~2/s)",
    ),
    Setting(
        "DAILY_DELETE_BURST", "daily", INTEGER, minimum=1, default="2", row="DAILY_DELETE_RATE",
        example="",
    ),
    Setting(
        "DAILY_DELETE_MAX_WAIT", "daily", NUMBER, minimum=0, default="15", row="DAILY_DELETE_RATE",
        example="",
    ),
    Setting(
        "AWS_REGION", "ecs", STRING,
        shown="— (required)",
        example="`eu-west-1`",
        meaning="the region of the cluster",
    ),
    Setting(
        "AWS_DEFAULT_REGION", "ecs", STRING, row="AWS_REGION",
        shown="— (required)",
        example="`eu-west-1`",
    ),
    Setting(
        "AWS_ENDPOINT_URL_ECS", "ecs", STRING, default="https://ecs.<region>.amazonaws.com",
        example="`http://127.0.0.1:5000`",
        meaning=(
            "standard endpoint overrides, ECS's own first (tests: moto); `http(s)://host[:port]`, no path"
        ),
    ),
    Setting(
        "AWS_ENDPOINT_URL", "ecs", STRING, default="https://ecs.<region>.amazonaws.com", row="AWS_ENDPOINT_URL_ECS",
        example="`http://127.0.0.1:5000`",
    ),
    Setting(
        "ECS_CLUSTER", "ecs", STRING,
        shown="— (required)",
        example="`voicefleet-prod`",
        meaning="",
    ),
    Setting(
        "ECS_TASK_DEFINITION", "ecs", STRING,
        shown="— (required)",
        example="`voicefleet-bot`",
        meaning="the bot family (latest ACTIVE revision), `family:rev` or an ARN",
    ),
    Setting(
        "ECS_TASK_DEFINITION_WEBRTC", "ecs", STRING,
        shown="unset (every session runs `ECS_TASK_DEFINITION`)",
        example="`voicefleet-bot-webrtc`",
        meaning=(
            "the SmallWebRTC bot's family, for `webrtc` sessions ([docs/webrtc.md](webrtc.md)); its tasks are "
            "listed, counted and reaped with the others"
        ),
    ),
    Setting(
        "ECS_CONTAINER_NAME", "ecs", STRING, default="bot",
        example="",
        meaning="container the environment override targets",
    ),
    Setting(
        "ECS_SUBNETS", "ecs", STRING,
        shown="— (required)",
        example="`subnet-a,subnet-b`",
        meaning="comma-separated",
    ),
    Setting(
        "ECS_SECURITY_GROUPS", "ecs", STRING,
        shown="— (required)",
        example="`sg-123`",
        meaning="comma-separated",
    ),
    Setting(
        "ECS_ASSIGN_PUBLIC_IP", "ecs", ENUM, choices=("ENABLED", "DISABLED"), default="ENABLED",
        example="`DISABLED`",
        meaning="bots need egress: a public IP or a NAT",
    ),
    Setting(
        "ECS_CAPACITY_PROVIDERS", "ecs", STRING, default="FARGATE",
        example="`FARGATE_SPOT:1,FARGATE:1`",
        meaning="`name[:weight[:base]]`, comma-separated",
    ),
    Setting(
        "ECS_CONNECT_TIMEOUT_SECONDS", "ecs", NUMBER, minimum=0.1, default="3",
        example="",
        meaning="connecting / the whole call, per attempt",
    ),
    Setting(
        "ECS_READ_TIMEOUT_SECONDS", "ecs", NUMBER, minimum=0.1, default="10", row="ECS_CONNECT_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "ECS_RETRY_DEADLINE_SECONDS", "ecs", NUMBER, minimum=0.1, default="10",
        example="",
        meaning="all attempts of one call (throttling, 5xx, no answer)",
    ),
    Setting(
        "ECS_POLL_SECONDS", "ecs", NUMBER, minimum=0.05, default="1",
        example="",
        meaning="`?wait=started` polls DescribeTasks this often",
    ),
    Setting(
        "ECS_CELLS", "ecs", STRING,
        shown="unset (one account: the dispatcher's own credentials')",
        example='`[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/voicefleet-cell"}]`',
        meaning=(
            "the AWS accounts launches spread over, a JSON list of cells: each a `name`, the `role_arn` the "
            "dispatcher assumes there (with its `external_id`, if the trust policy asks for one), and optionally "
            "that account's `cluster`, `task_definition`, `task_definition_webrtc`, `task_definitions` (a release's "
            "task definition → this account's own: a cell without it takes none of that release's sessions), `subnets`, `security_groups` and `max_tasks` (a soft cap "
            "on the cell's tasks, every replica's); at most 50 cells, one per account; needs `REDIS_URL`; a throttling cell's launches go to the "
            "others ([operations.md](operations.md#cells))"
        ),
    ),
    Setting(
        "ECS_BOT_TASK_ROLE_ARNS", "ecs", STRING,
        shown="— (required with a channel)",
        example="`arn:aws:iam::123456789012:role/voicefleet-prod-bot-task`",
        meaning=(
            "the bots' task roles, comma-separated (the AWS stack sets them): a bot's hello must prove a session "
            "of one of them named by its task's id. Without it every ECS bot's hello is refused "
            "([security.md](security.md#a-bots-hello-names-its-machine))"
        ),
    ),
    Setting(
        "AWS_ENDPOINT_URL_STS", "ecs", STRING,
        shown="`AWS_ENDPOINT_URL`, else `https://sts.<region>.amazonaws.com`",
        example="`http://127.0.0.1:5001`",
        meaning=(
            "endpoint override: the STS the bots' presigned `GetCallerIdentity` is sent to (a bot's request aimed "
            "anywhere else is refused); the bots read the same variable"
        ),
    ),
    Setting(
        "ECS_RUN_TASK_RATE", "ecs", NUMBER, minimum=0.001, default="20",
        example="",
        meaning=(
            "RunTask is 20 calls/s per account and region, counted once for the deployment (in the store with "
            "several replicas); a cold start waits at most `_MAX_WAIT` for its turn, else `503 ecs_rate_limited`"
        ),
    ),
    Setting(
        "ECS_RUN_TASK_BURST", "ecs", INTEGER, minimum=1, default="20", row="ECS_RUN_TASK_RATE",
        example="",
    ),
    Setting(
        "ECS_RUN_TASK_MAX_WAIT", "ecs", NUMBER, minimum=0, default="2", row="ECS_RUN_TASK_RATE",
        example="",
    ),
    Setting(
        "ECS_TASK_VCPU", "ecs", NUMBER, minimum=0.25, default="1",
        example="",
        meaning=(
            "the bot task's size (the aws-prod bot's by default), for the reserve's hot-tier cost in `/metrics` "
            "(× the region's Fargate price)"
        ),
    ),
    Setting(
        "ECS_TASK_MEMORY_GB", "ecs", NUMBER, minimum=0.5, default="2", row="ECS_TASK_VCPU",
        example="",
    ),
    Setting(
        "CLOUDRUN_PROJECT", "cloudrun", STRING,
        shown="— (required)",
        example="`voicefleet-prod`",
        meaning="the bot job the stack made",
    ),
    Setting(
        "CLOUDRUN_REGION", "cloudrun", STRING, row="CLOUDRUN_PROJECT",
        shown="— (required)",
        example="`europe-west1`",
    ),
    Setting(
        "CLOUDRUN_JOB", "cloudrun", STRING, row="CLOUDRUN_PROJECT",
        shown="— (required)",
        example="`vf-prod-bot`",
    ),
    Setting(
        "CLOUDRUN_CONTAINER", "cloudrun", STRING, default="bot",
        example="",
        meaning="the job's container the overrides name",
    ),
    Setting(
        "CLOUDRUN_API_URL", "cloudrun", STRING, default="https://run.googleapis.com/v2",
        example="`http://127.0.0.1:9003/v2`",
        meaning="endpoint override",
    ),
    Setting(
        "CLOUDRUN_AUTH", "cloudrun", ENUM, choices=("adc", "none"), default="adc",
        example="`none`",
        meaning="`none` sends no credentials: only with a `CLOUDRUN_API_URL` that is not Google's (tests)",
    ),
    Setting(
        "CLOUDRUN_GRACE_SECONDS", "cloudrun", INTEGER, minimum=0, default="120",
        example="",
        meaning="the execution's `timeout` = max session + this",
    ),
    Setting(
        "CLOUDRUN_TIMEOUT_SECONDS", "cloudrun", NUMBER, minimum=0.1, default="15",
        example="",
        meaning="",
    ),
    Setting(
        "CLOUDRUN_RETRY_DEADLINE_SECONDS", "cloudrun", NUMBER, minimum=0.1, default="15", row="CLOUDRUN_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "CLOUDRUN_POLL_SECONDS", "cloudrun", NUMBER, minimum=0.05, default="1",
        example="",
        meaning="`?wait=started` polls the execution this often",
    ),
    Setting(
        "CLOUDRUN_RUN_RATE", "cloudrun", NUMBER, minimum=0.001, default="1",
        example="",
        meaning=(
            "`jobs.run` calls, counted once for the deployment (Google publishes no number); a cold start waits "
            "at most `_MAX_WAIT`, else `503 cloudrun_rate_limited`"
        ),
    ),
    Setting(
        "CLOUDRUN_RUN_BURST", "cloudrun", INTEGER, minimum=1, default="5", row="CLOUDRUN_RUN_RATE",
        example="",
    ),
    Setting(
        "CLOUDRUN_RUN_MAX_WAIT", "cloudrun", NUMBER, minimum=0, default="2", row="CLOUDRUN_RUN_RATE",
        example="",
    ),
    Setting(
        "CLOUDRUN_BOT_SERVICE_ACCOUNT_ID", "cloudrun", STRING,
        shown="— (required with a channel)",
        example="`104000000000000000777`",
        meaning=(
            "the unique id of the job's service account (the stack's output): a hello's identity token must be "
            "its ([security.md](security.md#a-bots-hello-names-its-machine))"
        ),
    ),
    Setting(
        "CLOUDRUN_CELLS", "cloudrun", STRING,
        shown="unset (one project: `CLOUDRUN_PROJECT`)",
        example='`[{"name": "a", "project": "voicefleet-cell-a"}, {"name": "b", "project": "voicefleet-cell-b"}]`',
        meaning=(
            "the GCP projects executions spread over, a JSON list of cells: each a `name` and its `project`, and "
            "optionally that project's own `region`, `job`, `bot_service_account_id` (its bots' service account, "
            "which a bot's identity token is checked against) and `max_executions` (the deployment's executions "
            "there, counted once: every replica counts every replica's); at most 50 cells, one per project and "
            "region; needs `REDIS_URL`; the warm reserve runs over them; a project answering "
            "429 or a quota has its starts go to the others ([operations.md](operations.md#cells))"
        ),
    ),
    Setting(
        "VOICEFLEET_BODY_DIGEST", "cloudrun", STRING,
        shown="set by the provider",
        example="",
        meaning=(
            "not settings: written into each execution's env with the session's, so any replica reads the body's "
            "fingerprint (keyed: an HMAC, docs/providers.md), the transport and the release back from the "
            "execution; the bot ignores them"
        ),
    ),
    Setting(
        "VOICEFLEET_SESSION_TRANSPORT", "cloudrun", STRING, row="VOICEFLEET_BODY_DIGEST",
        shown="set by the provider",
        example="",
    ),
    Setting(
        "VOICEFLEET_RELEASE", "cloudrun", STRING, row="VOICEFLEET_BODY_DIGEST",
        shown="set by the provider",
        example="",
    ),
    Setting(
        "CLOUDRUN_IDENTITY_CERTS_URL", "cloudrun", STRING, default="https://www.googleapis.com/oauth2/v3/certs",
        example="",
        meaning="endpoint override: where Google publishes the keys that sign identity tokens",
    ),
    Setting(
        "GCE_PROJECT", "gce", STRING,
        shown="— (required)",
        example="`voicefleet-prod`",
        meaning="",
    ),
    Setting(
        "GCE_ZONE", "gce", STRING,
        shown="— (required)",
        example="`europe-west1-b`",
        meaning="",
    ),
    Setting(
        "GCE_INSTANCE_TEMPLATE", "gce", STRING,
        shown="— (required)",
        example="`voicefleet-bot`",
        meaning="a global template name, or a path such as `projects/p/regions/r/instanceTemplates/t`",
    ),
    Setting(
        "GCE_API_URL", "gce", STRING, default="https://compute.googleapis.com/compute/v1",
        example="`http://127.0.0.1:9001/compute/v1`",
        meaning="endpoint override",
    ),
    Setting(
        "GCE_INSTANCE_PREFIX", "gce", STRING, default="vf",
        example="`vfprod`",
        meaning="instance name = prefix-session id (must start with a letter)",
    ),
    Setting(
        "GCE_GRACE_SECONDS", "gce", INTEGER, minimum=0, default="300",
        example="",
        meaning="`maxRunDuration` = max session + this",
    ),
    Setting(
        "GCE_AUTH", "gce", ENUM, choices=("adc", "none"), default="adc",
        example="`none`",
        meaning="`none` sends no credentials: only with a `GCE_API_URL` that is not Google's (tests)",
    ),
    Setting(
        "GCE_TIMEOUT_SECONDS", "gce", NUMBER, minimum=0.1, default="15",
        example="",
        meaning="",
    ),
    Setting(
        "GCE_RETRY_DEADLINE_SECONDS", "gce", NUMBER, minimum=0.1, default="15", row="GCE_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "GCE_POLL_SECONDS", "gce", NUMBER, minimum=0.05, default="1",
        example="",
        meaning="`?wait=started` polls the instance this often",
    ),
    Setting(
        "GCE_INSERT_RATE", "gce", NUMBER, minimum=0.001, default="10",
        example="",
        meaning=(
            "inserts, counted once for the deployment (in the store with several replicas); Compute API quotas "
            "are per project per minute; a cold start waits at most `_MAX_WAIT`, else `503 gce_rate_limited`"
        ),
    ),
    Setting(
        "GCE_INSERT_BURST", "gce", INTEGER, minimum=1, default="20", row="GCE_INSERT_RATE",
        example="",
    ),
    Setting(
        "GCE_INSERT_MAX_WAIT", "gce", NUMBER, minimum=0, default="2", row="GCE_INSERT_RATE",
        example="",
    ),
    Setting(
        "GCE_MACHINE_TYPE", "gce", STRING, default="e2-standard-2",
        example="",
        meaning=(
            "the bot template's machine type (gcp-prod's by default), for the reserve's hot-tier cost in "
            "`/metrics`; E2 types are priced, another family only with `RESERVE_HOT_DOLLARS_PER_MONTH`. With "
            "`BOT_GPU`, checked at start-up against the GPU's machine family"
        ),
    ),
    Setting(
        "GCE_IDENTITY_CERTS_URL", "gce", STRING, default="https://www.googleapis.com/oauth2/v3/certs",
        example="`http://127.0.0.1:9001/oauth2/v3/certs`",
        meaning=(
            "endpoint override: where Google publishes the keys that sign instance identity tokens "
            "([security.md](security.md#a-bots-hello-names-its-machine))"
        ),
    ),
    Setting(
        "GCE_CELLS", "gce", STRING,
        shown="unset (one project: `GCE_PROJECT`)",
        example='`[{"name": "a", "project": "voicefleet-cell-a"}, {"name": "b", "project": "voicefleet-cell-b"}]`',
        meaning=(
            "the GCP projects VMs spread over, a JSON list of cells: each a `name` and its `project`, and "
            "optionally that project's own `zone`, `instance_template` (a global template's name there; else "
            "`GCE_INSTANCE_TEMPLATE`'s, in the cell's project) and `max_instances` (a soft cap on the cell's VMs, every replica's); at most "
            "50 cells, one per project and zone; needs `REDIS_URL`; with a bot channel the warm reserve runs over "
            "them too; a project answering `rateLimitExceeded` or a quota has its starts and refills go to the "
            "others ([operations.md](operations.md#cells)); "
            "a GCP stack sets it from its `gceCells` key, and makes the store for it "
            "([pulumi.md](pulumi.md#gcp-gcpproject-and-gcpregion-are-required))"
        ),
    ),
    Setting(
        "BOT_IDENTITY_AUDIENCE", "gce", STRING,
        shown="BOT_CHANNEL_URL's value",
        example="`wss://voice.example.com/bots/channel`",
        meaning=(
            "the audience a bot's identity token must name: the channel URL the bots dial. Needed with a channel: "
            "without it every Compute Engine or Fly bot is refused. With `MACHINES=k8s`, one of the API server's "
            "own audiences is refused at start ([kubernetes.md](kubernetes.md#identity))"
        ),
    ),
    Setting(
        "CLOUD_RUN_API_URL", "gce-drain", STRING, default="https://run.googleapis.com/v2",
        example="`http://127.0.0.1:9002/v2`",
        meaning=(
            "`python -m stacks.drain` only (it waits for Cloud Run's last instance): endpoint override; with both "
            "overrides and `GCE_AUTH=none` it sends no credentials (tests)"
        ),
    ),
    Setting(
        "MONITORING_API_URL", "gce-drain", STRING, default="https://monitoring.googleapis.com/v3",
        example="`http://127.0.0.1:9002/v3`",
        meaning="`python -m stacks.drain` only (Cloud Run's instance count metric): endpoint override",
    ),
    Setting(
        "FLY_API_TOKEN", "fly", STRING, secret=True,
        shown="— (required)",
        example="`fo1_…`",
        meaning="",
    ),
    Setting(
        "FLY_APP", "fly", STRING,
        shown="— (required)",
        example="`voicefleet-bots`",
        meaning="the app the bot machines live in",
    ),
    Setting(
        "FLY_APPS", "fly", STRING,
        shown="FLY_APP alone",
        example="`voicefleet-bots-2,voicefleet-bots-3`",
        meaning=(
            "more apps bot machines are created in, besides `FLY_APP` (one token for all): each app allows ~1 "
            "create/s, so a deployment past ~1 start/s spreads its creates over several "
            "([reserve.md](reserve.md#the-fleet-emulator-the-real-code-at-60-starts-a-minute-benchfleet_emulator)). "
            "A session's machine goes to the app its id hashes to, a reserve machine to one with a create to "
            "spare; a replica that did not create a machine knows it from its bot's hello (the Machine token "
            "names its id and app), and lists each app for it only without one"
        ),
    ),
    Setting(
        "FLY_API_HOST", "fly", STRING, default="https://api.machines.dev",
        example="`http://_api.internal:4280`",
        meaning="endpoint override",
    ),
    Setting(
        "BOT_IMAGE", "fly", STRING,
        shown="— (required)",
        example="`registry.fly.io/voicefleet-bots@sha256:…`",
        meaning="pin by digest",
    ),
    Setting(
        "FLY_GUEST_CPU_KIND", "fly", ENUM, choices=("shared", "performance"), default="shared",
        example="`performance`",
        meaning="",
    ),
    Setting(
        "FLY_GUEST_CPUS", "fly", INTEGER, minimum=1, default="4",
        example="`1`",
        meaning=(
            "shared-cpu-4x by default: its CPU quota (25 % of a core) covers a talking bot's; shared-cpu-1x's "
            "6.25 % does not ([providers.md](providers.md#cpu-the-default-size-and-flys-quota))"
        ),
    ),
    Setting(
        "FLY_GUEST_MEMORY_MB", "fly", INTEGER, minimum=256, default="1024",
        example="`2048`",
        meaning=(
            "multiple of 256; at least 256 per shared vCPU, 2048 per performance vCPU (Fly's least, checked at "
            "start)"
        ),
    ),
    Setting(
        "FLY_REGION", "fly", STRING,
        shown="nearest",
        example="`iad`",
        meaning="",
    ),
    Setting(
        "FLY_TIMEOUT_SECONDS", "fly", NUMBER, minimum=0.1, default="10",
        example="",
        meaning="",
    ),
    Setting(
        "FLY_RETRY_DEADLINE_SECONDS", "fly", NUMBER, minimum=0.1, default="10", row="FLY_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "FLY_CREATE_RATE", "fly", NUMBER, minimum=0.001, default="1",
        example="",
        meaning=(
            "creates: 1 req/s per app, burst 3, counted once for the deployment (in the store with several "
            "replicas); a cold start waits at most `_MAX_WAIT` for its create, else `503 fly_rate_limited`"
        ),
    ),
    Setting(
        "FLY_CREATE_BURST", "fly", INTEGER, minimum=1, default="3", row="FLY_CREATE_RATE",
        example="",
    ),
    Setting(
        "FLY_CREATE_MAX_WAIT", "fly", NUMBER, minimum=0, default="3", row="FLY_CREATE_RATE",
        example="",
    ),
    Setting(
        "FLY_LIST_RATE", "fly", NUMBER, minimum=0.001, default="1",
        example="",
        meaning=(
            "lists: 1 req/s per app, burst 3, counted once for the deployment like creates (not per replica: "
            "leave them at Fly's limit whatever the number of replicas); a list waits at most `_MAX_WAIT` for its "
            "turn, else `fly_rate_limited`"
        ),
    ),
    Setting(
        "FLY_LIST_BURST", "fly", INTEGER, minimum=1, default="3", row="FLY_LIST_RATE",
        example="",
    ),
    Setting(
        "FLY_LIST_MAX_WAIT", "fly", NUMBER, minimum=0, default="3", row="FLY_LIST_RATE",
        example="",
    ),
    Setting(
        "FLY_ORG", "fly", STRING,
        shown="— (required with a channel)",
        example="`my-org`",
        meaning=(
            "the organisation's slug: its Machines' OIDC tokens are issued by `https://oidc.fly.io/<FLY_ORG>`. "
            "Without it (or `FLY_OIDC_ISSUER`) every Fly bot's hello is refused "
            "([security.md](security.md#a-bots-hello-names-its-machine))"
        ),
    ),
    Setting(
        "FLY_OIDC_ISSUER", "fly", STRING,
        shown="https://oidc.fly.io/&lt;FLY_ORG&gt;",
        example="`http://127.0.0.1:9002/oidc/my-org`",
        meaning="endpoint override: the issuer the tokens must name",
    ),
    Setting(
        "FLY_OIDC_JWKS_URL", "fly", STRING,
        shown="the issuer's /.well-known/jwks",
        example="",
        meaning="endpoint override: the issuer's signing keys (its discovery document's `jwks_uri`)",
    ),
    Setting(
        "FLY_FROZEN_FORM", "fly", ENUM, choices=("suspend", "stop", "off"),
        shown="`suspend` (`stop` above 2048 MB)",
        example="`off`",
        meaning=(
            "the reserve's frozen tier: idle machines **suspended** (Fly allows ≤ 2 GB, no swap, no schedule) or "
            "**stopped** (their disk kept, no create on a claim; such machines are created without `auto_destroy` "
            "and destroyed by the dispatcher); `off`: running idle bots only. After Fly refuses a suspend the "
            "tier stops machines instead"
        ),
    ),
    Setting(
        "FLY_RUNNING_DOLLARS_PER_MONTH", "fly", NUMBER, minimum=0, default="8.41",
        example="",
        meaning=(
            "what one running idle bot and one frozen bot cost a month (shared-cpu-4x 1 GB; 2 GB of storage at "
            "$0.15 per GB-month), for the reserve's cost in `/metrics`; set them for your guest size"
        ),
    ),
    Setting(
        "FLY_FROZEN_DOLLARS_PER_MONTH", "fly", NUMBER, minimum=0, default="0.30", row="FLY_RUNNING_DOLLARS_PER_MONTH",
        example="",
    ),
    Setting(
        "CEREBRIUM_PROJECT", "cerebrium", STRING,
        shown="— (required)",
        example="`p-1a2b3c4d`",
        meaning="the project id in the function's URL",
    ),
    Setting(
        "CEREBRIUM_APP", "cerebrium", STRING,
        shown="— (required)",
        example="`voicefleet-bot`",
        meaning="the deployed app (cerebrium.toml's `name`)",
    ),
    Setting(
        "CEREBRIUM_API_KEY", "cerebrium", STRING, secret=True,
        shown="— (required)",
        example="`eyJ…`",
        meaning="the project's JWT (API Keys in Cerebrium's dashboard); a secret",
    ),
    Setting(
        "CEREBRIUM_FUNCTION", "cerebrium", STRING, default="start_bot",
        example="",
        meaning="the app's function that runs one session; a `_name` one is private (refused)",
    ),
    Setting(
        "CEREBRIUM_API_URL", "cerebrium", STRING, default="https://api.aws.us-east-1.cerebrium.ai/v4",
        example="`http://127.0.0.1:9003/v4`",
        meaning="endpoint override (another region's, or tests)",
    ),
    Setting(
        "CEREBRIUM_CONNECT_SECONDS", "cerebrium", NUMBER, minimum=1, default="120",
        example="`60`",
        meaning="a run whose bot has not said hello by then is `failed`",
    ),
    Setting(
        "CEREBRIUM_REDIAL_SECONDS", "cerebrium", NUMBER, minimum=0, default="30",
        example="",
        meaning=(
            "a bot whose channel dropped without `ended` may dial again this long before the run reads `failed`"
        ),
    ),
    Setting(
        "CEREBRIUM_TIMEOUT_SECONDS", "cerebrium", NUMBER, minimum=0.1, default="15",
        example="",
        meaning="per call; 429 and 5xx are retried until the deadline, then 503",
    ),
    Setting(
        "CEREBRIUM_RETRY_DEADLINE_SECONDS", "cerebrium", NUMBER, minimum=0.1, default="15", row="CEREBRIUM_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "CEREBRIUM_POLL_SECONDS", "cerebrium", NUMBER, minimum=0.05, default="0.5",
        example="",
        meaning="`?wait=started` reads the run's record this often",
    ),
    Setting(
        "MODAL_TOKEN_ID", "modal", STRING,
        shown="— (required)",
        example="`ak-…`",
        meaning="the workspace's token, sent as metadata on every call",
    ),
    Setting(
        "MODAL_TOKEN_SECRET", "modal", STRING, secret=True, row="MODAL_TOKEN_ID",
        shown="— (required)",
        example="`as-…`",
    ),
    Setting(
        "MODAL_APP", "modal", STRING,
        shown="— (required)",
        example="`voicefleet-bots`",
        meaning="the App the Sandboxes belong to (created if missing)",
    ),
    Setting(
        "MODAL_BOT_IMAGE", "modal", STRING,
        shown="— (required)",
        example="`im-…`",
        meaning=(
            "the bot image's id on Modal (built once from your registry image: "
            "[providers.md](providers.md#machinesmodal-a-modal-sandbox-per-session))"
        ),
    ),
    Setting(
        "MODAL_BOT_COMMAND", "modal", STRING, default="python -I -u -B -m bot",
        example="",
        meaning="the command the Sandbox runs (no session values: those are in its Secret)",
    ),
    Setting(
        "MODAL_CPU", "modal", NUMBER, minimum=0.125, default="1",
        example="`0.5`",
        meaning="physical cores (1 core = 2 vCPUs) and MiB requested",
    ),
    Setting(
        "MODAL_MEMORY_MB", "modal", INTEGER, minimum=128, default="2048", row="MODAL_CPU",
        example="`1024`",
    ),
    Setting(
        "MODAL_GRACE_SECONDS", "modal", INTEGER, minimum=0, default="300",
        example="",
        meaning="Sandbox `timeout` = max session + this (at most 24 h)",
    ),
    Setting(
        "MODAL_SERVER_URL", "modal", STRING, default="https://api.modal.com",
        example="`http://127.0.0.1:9003`",
        meaning="endpoint override (`http://`: plain h2c, tests)",
    ),
    Setting(
        "MODAL_TIMEOUT_SECONDS", "modal", NUMBER, minimum=0.1, default="30",
        example="",
        meaning=(
            "one call's deadline (the client's own retries inside) / all attempts of a call RESOURCE_EXHAUSTED or "
            "unanswered"
        ),
    ),
    Setting(
        "MODAL_RETRY_DEADLINE_SECONDS", "modal", NUMBER, minimum=0.1, default="15", row="MODAL_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "MODAL_POLL_SECONDS", "modal", NUMBER, minimum=0.05, default="1",
        example="",
        meaning="`?wait=started` polls the Sandbox this often",
    ),
    Setting(
        "MODAL_CREATE_RATE", "modal", NUMBER, minimum=0.001, default="5",
        example="",
        meaning="creates paced for the deployment (Modal publishes no Sandbox create rate)",
    ),
    Setting(
        "MODAL_CREATE_BURST", "modal", INTEGER, minimum=1, default="10", row="MODAL_CREATE_RATE",
        example="",
    ),
    Setting(
        "MODAL_CREATE_MAX_WAIT", "modal", NUMBER, minimum=0, default="2", row="MODAL_CREATE_RATE",
        example="",
    ),
    Setting(
        "MODAL_OIDC_DISCOVERY_URL", "modal", STRING, default="https://oidc.modal.com/.well-known/openid-configuration",
        example="",
        meaning=(
            "where Modal's OIDC keys are found (its `jwks_uri`), to check each Sandbox's identity token: an "
            "override for tests against a fake"
        ),
    ),
    Setting(
        "AZURE_SUBSCRIPTION_ID", "aci", STRING,
        shown="— (required)",
        example="`00000000-0000-0000-0000-000000000000`",
        meaning="the subscription the groups are billed to",
    ),
    Setting(
        "AZURE_RESOURCE_GROUP", "aci", STRING,
        shown="— (required)",
        example="`voicefleet-prod`",
        meaning="the resource group the stack made for the bots' container groups",
    ),
    Setting(
        "AZURE_LOCATION", "aci", STRING,
        shown="— (required)",
        example="`westeurope`",
        meaning="the region the groups run in (ACI's quotas and rates are per subscription and region)",
    ),
    Setting(
        "ACI_BOT_IMAGE", "aci", STRING,
        shown="— (required)",
        example="`vfprod.azurecr.io/bot@sha256:…`",
        meaning="the bot image, by digest",
    ),
    Setting(
        "ACI_REGISTRY_SERVER", "aci", STRING,
        shown="the image's registry host",
        example="`vfprod.azurecr.io`",
        meaning="the registry the image is pulled from",
    ),
    Setting(
        "ACI_REGISTRY_IDENTITY", "aci", STRING,
        shown="unset (a public image)",
        example="`/subscriptions/…/userAssignedIdentities/vf-pull`",
        meaning="a user-assigned identity with AcrPull the groups pull with: no registry password",
    ),
    Setting(
        "ACI_SUBNET_ID", "aci", STRING,
        shown="unset (Azure's outbound network)",
        example="`/subscriptions/…/subnets/bots`",
        meaning="a VNet subnet for the groups",
    ),
    Setting(
        "ACI_CPU", "aci", NUMBER, minimum=0.1, default="1",
        example="",
        meaning="each group's request",
    ),
    Setting(
        "ACI_MEMORY_GB", "aci", NUMBER, minimum=0.1, default="2", row="ACI_CPU",
        example="",
    ),
    Setting(
        "ACI_GROUP_PREFIX", "aci", STRING, default="vf",
        example="`vfprod`",
        meaning=(
            "group name = prefix-session id, or prefix-idle-bot id for a reserve group (lowercase, ≤ 30, no `-` "
            "at the end nor two in a row: ACI refuses `--` in a name)"
        ),
    ),
    Setting(
        "ACI_CELLS", "aci", STRING,
        shown="unset (one subscription: `AZURE_SUBSCRIPTION_ID`)",
        example=('`[{"name": "a", "subscription_id": "11111111-…", "resource_group": "voicefleet-cell-a", '
                 '"location": "westeurope"}]`'),
        meaning=(
            "the Azure subscriptions container groups spread over, a JSON list of cells: each a `name`, its "
            "`subscription_id`, `resource_group` and `location`, and optionally `client_id` (a user-assigned "
            "managed identity of the dispatcher's host to sign in as there; else the dispatcher's own, given a "
            "role on that resource group alone), `subnet_id` (a delegated subnet in that subscription and "
            "location; needed there when `ACI_SUBNET_ID` is set), `max_groups` (a soft cap on the cell's groups, every replica's) and "
            "`create_rate` / `create_burst` (that subscription's own create budget, creates and deletes a second and "
            "how many at once: one Azure raised on request, or less where other work shares it; unset: "
            "`ACI_CREATE_RATE` / `ACI_CREATE_BURST`); at most 50 cells, one per subscription and location, each in "
            "its own resource group, each with its own create budget, counted per cell (a cold start waits at most "
            "`ACI_CREATE_MAX_WAIT` in any); needs `REDIS_URL`; with `BOT_CHANNEL_URL` the warm "
            "reserve runs over the cells ([reserve.md](reserve.md)); a subscription answering 429 or a quota has "
            "its starts go to the others ([operations.md](operations.md#cells)); an Azure stack sets it from its "
            "`aciCells` key "
            "([pulumi.md](pulumi.md#azure-azure-nativesubscriptionid-and-azure-nativelocation-are-required))"
        ),
    ),
    Setting(
        "ACI_BOT_SETTINGS", "aci", STRING,
        shown="unset",
        example="`LOG_FORMAT=json,OTEL_SERVICE_NAME=voicefleet-bot`",
        meaning=(
            "`KEY=value,…`: the bots' own plain settings, on every group as plain values (never a secret: anyone "
            "who may read the group sees them)"
        ),
    ),
    Setting(
        "ACI_BOT_IMAGE_WEBRTC", "aci", STRING,
        shown="unset (`ACI_BOT_IMAGE` for every session)",
        example="`vfprod.azurecr.io/bot-webrtc@sha256:…`",
        meaning="the SmallWebRTC bot, by digest, for sessions whose transport is `webrtc`",
    ),
    Setting(
        "ACI_BOT_SECRETS", "aci", STRING, secret=True,
        shown="unset",
        example="`DEEPGRAM_API_KEY=https://vf-prod-1a2b3c.vault.azure.net/secrets/deepgram-api-key/0f…,…`",
        meaning=(
            "`ENV=<versioned Key Vault secret URI>,…`: the bots' keys, read once with the dispatcher's identity "
            "(a token for `https://vault.azure.net`; it needs Key Vault Secrets User on each), kept in memory and "
            "given to every group as secure values; a version is required (the values are cached)"
        ),
    ),
    Setting(
        "ACI_BOT_ENV_FROM", "aci", STRING,
        shown="unset",
        example="`DEEPGRAM_API_KEY,CARTESIA_API_KEY`",
        meaning=(
            "names of the dispatcher's own variables every group gets, as secure values (the bot's service keys: "
            "ACI has no task definition to hold them). The Azure stack does not set it: its launch policy admits "
            "only the provider's own variables (`LAUNCH_VARIABLES`) and the `ACI_BOT_SETTINGS` and "
            "`ACI_BOT_SECRETS` names"
        ),
    ),
    Setting(
        "AZURE_TENANT_ID", "aci", STRING,
        shown="unset",
        example="",
        meaning=(
            "a service principal (client-credentials grant), as azure-identity reads them; without a secret the "
            "host's managed identity is used (`IDENTITY_ENDPOINT`/`IDENTITY_HEADER` on Container Apps, else the "
            "instance metadata endpoint) and `AZURE_CLIENT_ID` picks a user-assigned one"
        ),
    ),
    Setting(
        "AZURE_CLIENT_ID", "aci", STRING, row="AZURE_TENANT_ID",
        shown="unset",
        example="",
    ),
    Setting(
        "AZURE_CLIENT_SECRET", "aci", STRING, secret=True, row="AZURE_TENANT_ID",
        shown="unset",
        example="",
    ),
    Setting(
        "IDENTITY_ENDPOINT", "aci", STRING,
        shown="set by Container Apps and App Service",
        example="",
        meaning="their managed identity's token endpoint and its secret header",
    ),
    Setting(
        "IDENTITY_HEADER", "aci", STRING, row="IDENTITY_ENDPOINT", secret=True,
        shown="set by Container Apps and App Service",
        example="",
    ),
    Setting(
        "AZURE_AUTHORITY_HOST", "aci", STRING, default="https://login.microsoftonline.com",
        example="",
        meaning="the Entra authority (a sovereign cloud, tests)",
    ),
    Setting(
        "ARM_ENDPOINT", "aci", STRING, default="https://management.azure.com",
        example="`https://127.0.0.1:9443`",
        meaning="endpoint override; https only (a bearer token never goes over http)",
    ),
    Setting(
        "ARM_AUDIENCE", "aci", STRING, default="https://management.azure.com",
        example="`https://management.chinacloudapi.cn`",
        meaning=(
            "the audience ARM tokens are asked for (`<it>/.default`, or the managed identity's `resource`): "
            "Azure's, whatever `ARM_ENDPOINT` is; set it only for another cloud"
        ),
    ),
    Setting(
        "ACI_CA_BUNDLE", "aci", STRING,
        shown="the system's",
        example="`/etc/ssl/arm-ca.pem`",
        meaning="a private CA for `ARM_ENDPOINT` and the authority (Azure Stack Hub, a test fake)",
    ),
    Setting(
        "ACI_AUTH", "aci", ENUM, choices=("azure", "none"), default="azure",
        example="`none`",
        meaning="`none` sends no token: only with an `ARM_ENDPOINT` that is not Azure's (tests)",
    ),
    Setting(
        "ACI_TIMEOUT_SECONDS", "aci", NUMBER, minimum=0.1, default="15",
        example="",
        meaning="per call / all attempts of one call (429 after its Retry-After, 5xx, no answer)",
    ),
    Setting(
        "ACI_RETRY_DEADLINE_SECONDS", "aci", NUMBER, minimum=0.1, default="20", row="ACI_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "ACI_POLL_SECONDS", "aci", NUMBER, minimum=0.05, default="2",
        example="",
        meaning="`?wait=started` reads the group this often",
    ),
    Setting(
        "ACI_LRO_SECONDS", "aci", NUMBER, minimum=1, default="120",
        example="",
        meaning="how long a create's async operation is followed",
    ),
    Setting(
        "ACI_CREATE_RATE", "aci", NUMBER, minimum=0.001, default="0.05555555555555555", shown="`0.0556` (one per 18 s)",
        example="",
        meaning=(
            "creates **and deletes** (ACI: ≤ 100 per 5 min and ≤ 300 an hour per region), counted once for the "
            "deployment (with `ACI_CELLS`, each cell's, unless it states its own `create_rate` / `create_burst`); a "
            "cold start waits at most `_MAX_WAIT`, else `503 aci_rate_limited`"
        ),
    ),
    Setting(
        "ACI_CREATE_BURST", "aci", INTEGER, minimum=1, default="83", row="ACI_CREATE_RATE",
        example="",
    ),
    Setting(
        "ACI_CREATE_MAX_WAIT", "aci", NUMBER, minimum=0, default="2", row="ACI_CREATE_RATE",
        example="",
    ),
    Setting(
        "ACI_WRITE_RATE", "aci", NUMBER, minimum=0.001, default="5",
        example="",
        meaning="ARM writes, half the subscription's bucket (10/s, 200), counted once for the deployment",
    ),
    Setting(
        "ACI_WRITE_BURST", "aci", INTEGER, minimum=1, default="50", row="ACI_WRITE_RATE",
        example="",
    ),
    Setting(
        "ACI_WRITE_MAX_WAIT", "aci", NUMBER, minimum=0, default="2", row="ACI_WRITE_RATE",
        example="",
    ),
    Setting(
        "ACI_READ_RATE", "aci", NUMBER, minimum=0.001, default="12",
        example="",
        meaning="ARM reads, half the subscription's bucket (25/s, 250), counted once for the deployment",
    ),
    Setting(
        "ACI_READ_BURST", "aci", INTEGER, minimum=1, default="100", row="ACI_READ_RATE",
        example="",
    ),
    Setting(
        "ACI_READ_MAX_WAIT", "aci", NUMBER, minimum=0, default="2", row="ACI_READ_RATE",
        example="",
    ),
    Setting(
        "K8S_NAMESPACE", "k8s", STRING,
        shown="— (required)",
        example="`voicefleet-bots`",
        meaning=(
            "the namespace the bots' pods run in (label it `pod-security.kubernetes.io/enforce=restricted`)"
        ),
    ),
    Setting(
        "K8S_API_URL", "k8s", STRING,
        shown="in a Pod: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`",
        example="`https://10.0.0.1:443`",
        meaning=(
            "the API server; https only (a bearer token never goes over http), except a local fake on 127.0.0.1, "
            "and with no `user:password@` in it"
        ),
    ),
    Setting(
        "KUBERNETES_SERVICE_HOST", "k8s", STRING,
        shown="set by the kubelet in every container",
        example="",
        meaning="the API server as a Pod reaches it, read when `K8S_API_URL` is unset",
    ),
    Setting(
        "KUBERNETES_SERVICE_PORT", "k8s", STRING, row="KUBERNETES_SERVICE_HOST",
        shown="set by the kubelet in every container",
        example="",
    ),
    Setting(
        "K8S_TOKEN_FILE", "k8s", STRING, default="/var/run/secrets/kubernetes.io/serviceaccount/token",
        example="",
        meaning=(
            "the dispatcher's ServiceAccount token, read again whenever the kubelet rotates the file (never a "
            "token in the environment)"
        ),
    ),
    Setting(
        "K8S_CA_FILE", "k8s", STRING, default="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        example="",
        meaning="the cluster's CA, trusted for `K8S_API_URL`",
    ),
    Setting(
        "K8S_CELLS", "k8s", STRING,
        shown="unset (one cluster: `K8S_API_URL`)",
        example='`[{"name": "a", "api_url": "https://10.0.0.1", "token_file": "/var/run/cells/a/token", '
                '"ca_file": "/var/run/cells/a/ca.crt"}]`',
        meaning=(
            "the Kubernetes clusters the bots' pods spread over (`K8S_MODE=pods` only), a JSON list of cells: each a "
            "`name`, its API server's `api_url` (https, with no `user:password@`), the files holding the "
            "dispatcher's token for it (`token_file`) and its CA (`ca_file`), never a credential itself, and "
            "optionally its own `namespace` (else `K8S_NAMESPACE`) and `max_pods` (the deployment's pods there, "
            "counted once: every replica counts every replica's; `0` closes the cell, to drain it); at most 50 "
            "cells, one per cluster and namespace; "
            "needs `REDIS_URL`; with `BOT_CHANNEL_URL` the warm reserve runs over the cells too (idle pods count in "
            "`max_pods`); a cluster answering 429 or `exceeded quota`, or whose API server cannot be "
            "connected to, has its starts go to the others "
            "([kubernetes.md](kubernetes.md#several-clusters), [operations.md](operations.md#cells))"
        ),
    ),
    Setting(
        "K8S_BOT_CPU", "k8s", STRING, default="1",
        example="`500m`",
        meaning=(
            "each bot container's requests and limits (equal: the pod is `Guaranteed`, never the first evicted)"
        ),
    ),
    Setting(
        "K8S_BOT_MEMORY", "k8s", STRING, default="1Gi", row="K8S_BOT_CPU",
        example="`2Gi`",
    ),
    Setting(
        "K8S_RUNTIME_CLASS", "k8s", STRING,
        shown="unset (the node's default runtime)",
        example="`gvisor`",
        meaning="the pods' `runtimeClassName`, for a sandboxed runtime (gVisor, Kata) the cluster offers",
    ),
    Setting(
        "K8S_SERVICE_ACCOUNT", "k8s", STRING,
        shown="unset (the namespace's `default`)",
        example="`voicefleet-bot`",
        meaning=(
            "the bots' ServiceAccount: the subject of the projected identity token each pod carries (its API "
            "token is never mounted); a hello is admitted only with a token of exactly this account (the stack "
            "sets it; in the `agent-sandbox` mode the SandboxTemplate's pod must run as it)"
        ),
    ),
    Setting(
        "K8S_STOP_GRACE_SECONDS", "k8s", INTEGER, minimum=0, default="30",
        example="",
        meaning=(
            "a stopped session's pod is deleted with this grace period: SIGTERM, its bot's goodbye, then SIGKILL"
        ),
    ),
    Setting(
        "K8S_TIMEOUT_SECONDS", "k8s", NUMBER, minimum=0.1, default="10",
        example="",
        meaning="per call / all attempts of one call (429 after its Retry-After, 5xx, no answer)",
    ),
    Setting(
        "K8S_RETRY_DEADLINE_SECONDS", "k8s", NUMBER, minimum=0.1, default="10", row="K8S_TIMEOUT_SECONDS",
        example="",
    ),
    Setting(
        "K8S_NODE_VCPU_HOUR_DOLLARS", "k8s", NUMBER, minimum=0, default="0.021811",
        example="`0.0404`",
        meaning=(
            "the nodes' price per vCPU-hour and per GiB-hour: a bot's pod is priced at its requests × these "
            "(Kubernetes has no list price), for the reserve's hot tier, each session's cost and `GET /status`"
        ),
    ),
    Setting(
        "K8S_NODE_GB_HOUR_DOLLARS", "k8s", NUMBER, minimum=0, row="K8S_NODE_VCPU_HOUR_DOLLARS",
        shown="`0.002923` (a GKE Standard E2 node, us-central1)",
        example="`0.0044`",
    ),
    Setting(
        "K8S_POLL_SECONDS", "k8s", NUMBER, minimum=0.05, default="1",
        example="",
        meaning=(
            "`?wait=started` watches the pod (the agent-sandbox mode: its claim); a watch that fails again is "
            "opened after this pause, doubled each time (to 5 s)"
        ),
    ),
    Setting(
        "K8S_MODE", "k8s", ENUM, choices=("pods", "agent-sandbox"), default="pods",
        example="`agent-sandbox`",
        meaning=(
            "`pods`: a bare Pod per session on any cluster; `agent-sandbox`: a SandboxClaim per session on "
            "kubernetes-sigs/agent-sandbox (`v1beta1`, checked at start), whose pool's bots all boot one web "
            "transport, so `TRANSPORTS` names one: `daily` or `webrtc` (else the dispatcher stops at start) "
            "([kubernetes.md](kubernetes.md#the-agent-sandbox-mode))"
        ),
    ),
    Setting(
        "K8S_BOT_CHANNEL_CA_CONFIGMAP", "k8s", STRING,
        shown="unset",
        example="`voicefleet-channel-ca`",
        meaning=(
            "a ConfigMap in `K8S_NAMESPACE` whose `ca.crt` (public) every bot pod mounts beside its identity token "
            "and trusts for a `wss://` `BOT_CHANNEL_URL` (its `BOT_CHANNEL_CA_FILE`); the Kubernetes stack makes "
            "it ([kubernetes.md](kubernetes.md#the-channels-tls)). Unset: bots trust their image's CAs"
        ),
    ),
    Setting(
        "K8S_BOT_SECRET", "k8s", STRING,
        shown="unset",
        example="`voicefleet-k8s-dev-bot-keys-0123456789ab`",
        meaning=(
            "a Secret in `K8S_NAMESPACE` whose keys every bot pod takes as environment variables (`envFrom`), "
            "read by the kubelet, never by the dispatcher; the Kubernetes stack writes it from `botSecrets` or "
            "names `k8sBotSecret` ([kubernetes.md](kubernetes.md#its-keys)), with the trace collector's headers "
            "(`OTEL_EXPORTER_OTLP_HEADERS`) among them. Unset: bots get no keys"
        ),
    ),
    Setting(
        "K8S_WARM_POOL", "k8s", STRING, default="voicefleet-bot",
        example="",
        meaning="the agent-sandbox mode: the SandboxWarmPool every session's claim checks out from",
    ),
    Setting(
        "RESERVE_MIN_IDLE", "reserve", INTEGER, minimum=0, default="1",
        meaning="idle bots the deployment keeps (locally too: the first session is warm)",
    ),
    Setting(
        "RESERVE_MAX_IDLE", "reserve", INTEGER, minimum=0, default="10",
        meaning=(
            "cap on the deployment's running reserve bots (idle + warming); **`0` turns the reserve off** (every "
            "start cold)"
        ),
    ),
    Setting(
        "RESERVE_BUFFER", "reserve", NUMBER, minimum=0, default="0.1",
        meaning="extra idle bots per active session",
    ),
    Setting(
        "RESERVE_BURST", "reserve", NUMBER, minimum=0, default="1",
        meaning="factor on arrivals/s × cold-start seconds (bots started ahead of a burst)",
    ),
    Setting(
        "RESERVE_MAX_IDLE_SECONDS", "reserve", NUMBER, minimum=10, default="900",
        meaning="an idle bot older than this is retired (no stale code for long)",
    ),
    Setting(
        "RESERVE_SCALEDOWN_SECONDS", "reserve", NUMBER, minimum=0, default="60",
        meaning="a surplus idle bot is retired once idle this long",
    ),
    Setting(
        "RESERVE_POOL_SCALEDOWN_SECONDS", "reserve", NUMBER, minimum=30, default="120",
        meaning=(
            "a Kubernetes agent-sandbox pool's size falls only to the highest target of this window (30 at least)"
        ),
    ),
    Setting(
        "RESERVE_COLD_START_SECONDS", "reserve", NUMBER, minimum=0.1,
        shown="local 1.5, fly 3, gce 30, ecs 40, k8s 8",
        meaning=(
            "the cold start assumed until one is measured (each launch → hello updates it; an agent-sandbox "
            "pool's refill is not measured yet)"
        ),
    ),
    Setting(
        "RESERVE_RATE_SAMPLE", "reserve", INTEGER, minimum=2, default="10",
        meaning="the arrival rate is measured over this many recent starts",
    ),
    Setting(
        "RESERVE_SCHEDULE", "reserve", STRING,
        shown="unset",
        meaning=(
            "raise the minimum in UTC windows, e.g. `08:00-18:00=3`: an override of the floor the forecast can "
            "raise, never lower"
        ),
    ),
    Setting(
        "RESERVE_HOT_DOLLARS_PER_MONTH", "reserve", NUMBER, minimum=0,
        shown="from the provider's list price",
        meaning=(
            "what one running idle bot costs a month, for "
            "`voicefleet_reserve_tier_cost_dollars_per_month{tier=\"hot\"}` and each session's `cost` "
            "([operations.md](operations.md#what-a-call-cost)): Fargate us-east-1 per vCPU and GB (`ECS_TASK_*`), "
            "Compute Engine E2 (`GCE_MACHINE_TYPE`), Fly `FLY_RUNNING_DOLLARS_PER_MONTH`, local 0 "
            "([reserve.md](reserve.md#metrics)); set it for another region, size or discount"
        ),
    ),
    Setting(
        "BOT_CHANNEL_URL", "reserve", STRING,
        shown="local: the dispatcher's own port",
        meaning=(
            "the channel URL bots dial (`wss://…/bots/channel`). Cloud: set on the dispatcher (it turns the "
            "reserve on) and on the bots; without it every start is cold"
        ),
    ),
    Setting(
        "RESERVE_SERVICE_LEVEL", "reserve-planner", NUMBER, minimum=0.5, default="0.95",
        meaning=(
            "the chance that a cold start's worth of starts all find a ready bot (the Poisson quantile the stock "
            "is sized at); higher costs idle machines"
        ),
    ),
    Setting(
        "RESERVE_FORECAST", "reserve-planner", BOOLEAN, default="1",
        meaning="`0` sizes from the recent starts alone, without the forecast by time of day and week",
    ),
    Setting(
        "RESERVE_MIN_HOT", "reserve-planner", INTEGER, minimum=0, default="1",
        meaning=(
            "running idle bots kept beside a frozen tier (Fly): a claim of one takes 0.3 s, of a frozen one a "
            "resume more"
        ),
    ),
    Setting(
        "RESERVE_MAX_FROZEN", "reserve-planner", INTEGER, minimum=0, default="1000",
        meaning="cap on frozen bots (they cost storage, not compute)",
    ),
    Setting(
        "RESERVE_MAX_FROZEN_SECONDS", "reserve-planner", NUMBER, minimum=60, default="86400",
        meaning="a frozen bot older than this is retired",
    ),
    Setting(
        "RESERVE_FROZEN_SCALEDOWN_SECONDS", "reserve-planner", NUMBER, minimum=0, default="1800",
        meaning="a surplus frozen bot (20 % above the target) is retired once frozen this long",
    ),
    Setting(
        "RESERVE_SURGE_FACTOR", "reserve-planner", NUMBER, minimum=1, default="5",
        meaning=(
            "stock kept for a burst of this factor over the forecast's rate, lasting this long, where the "
            "provider creates machines slower than that (0 s: none)"
        ),
    ),
    Setting(
        "RESERVE_SURGE_SECONDS", "reserve-planner", NUMBER, minimum=0, default="0", row="RESERVE_SURGE_FACTOR",
    ),
    Setting(
        "BOT_FILE", "bot", STRING,
        shown="`examples/parrot/bot.py` (the parrot, which repeats what you say and needs no keys)",
        meaning=(
            "the Pipecat bot file to run: any `bot.py` with an `async def bot(runner_args)`, as Pipecat's runner "
            "and Pipecat Cloud define it ([bring-your-bot.md](bring-your-bot.md)). Imported before the bot "
            "reports ready, so its imports never delay a warm session; a broken file ends the bot with exit 4 and "
            "a detail naming the file and the exception"
        ),
    ),
    Setting(
        "DEEPGRAM_API_KEY", "bot-assistant", STRING, secret=True,
        shown="unset",
        meaning=(
            "all three are needed; a missing one ends the session with an error naming it (never its value)"
        ),
    ),
    Setting(
        "OPENAI_API_KEY", "bot-assistant", STRING, secret=True, row="DEEPGRAM_API_KEY",
        shown="unset",
    ),
    Setting(
        "CARTESIA_API_KEY", "bot-assistant", STRING, secret=True, row="DEEPGRAM_API_KEY",
        shown="unset",
    ),
    Setting(
        "DEEPGRAM_MODEL", "bot-assistant", STRING,
        shown="Pipecat's (`nova-3-general`)",
        meaning="STT model",
    ),
    Setting(
        "OPENAI_MODEL", "bot-assistant", STRING,
        shown="Pipecat's (`gpt-4.1`)",
        meaning="LLM model",
    ),
    Setting(
        "CARTESIA_MODEL", "bot-assistant", STRING,
        shown="Pipecat's",
        meaning="TTS model and voice",
    ),
    Setting(
        "CARTESIA_VOICE_ID", "bot-assistant", STRING, row="CARTESIA_MODEL",
        shown="a stock English voice",
    ),
    Setting(
        "OPENAI_REALTIME_MODEL", "bot-assistant", STRING,
        shown="Pipecat's",
        meaning="the converged example's (examples/realtime) speech-to-speech model ([converged.md](converged.md))",
    ),
    Setting(
        "GOOGLE_API_KEY", "bot-assistant", STRING, secret=True,
        shown="unset",
        meaning="the converged example's Gemini Live key: it speaks to Gemini Live when OPENAI_API_KEY is unset",
    ),
    Setting(
        "GEMINI_LIVE_MODEL", "bot-assistant", STRING,
        shown="Pipecat's",
        meaning=(
            "the converged example's Gemini Live model; the google-genai SDK's `GOOGLE_GEMINI_BASE_URL` points it at "
            "another endpoint (TLS only: a test's fake is trusted with `SSL_CERT_FILE`)"
        ),
    ),
    Setting(
        "OPENAI_REALTIME_URL", "bot-assistant", STRING,
        shown="OpenAI's (`wss://api.openai.com/v1/realtime`)",
        meaning="the converged example's realtime endpoint: a test's fake, or a compatible server",
    ),
    Setting(
        "BOT_SYSTEM_PROMPT", "bot-assistant", STRING,
        shown="short spoken answers",
        meaning="the LLM's system instruction",
    ),
    Setting(
        "DEEPGRAM_API_URL", "bot-assistant", STRING, default="wss://api.deepgram.com",
        meaning=(
            "Deepgram's base URL; Pipecat derives the `/v1/listen` WebSocket and the REST URL from it "
            "(`ws://`/`http://` → unencrypted both, for private deployments and tests)"
        ),
    ),
    Setting(
        "OPENAI_BASE_URL", "bot-assistant", STRING, default="https://api.openai.com/v1",
        meaning="the OpenAI SDK's base URL (any OpenAI-compatible server)",
    ),
    Setting(
        "CARTESIA_API_URL", "bot-assistant", STRING, default="https://api.cartesia.ai",
        meaning=(
            "Cartesia's API base; the TTS WebSocket is `/tts/websocket` on it (`https` → `wss`, `http` → `ws`)"
        ),
    ),
    Setting(
        "BOT_IDLE_TIMEOUT_SECONDS", "bot-host", NUMBER, default="300", above=0,
        meaning="end the session when nobody has spoken for this long",
    ),
    Setting(
        "BOT_CONNECT_TIMEOUT_SECONDS", "bot-host", NUMBER, default="120", above=0,
        meaning="exit 3 if no peer connects this long after `ready`",
    ),
    Setting(
        "BOT_MAX_IDLE_SECONDS", "bot-host", NUMBER, default="3600", above=0,
        meaning="a reserve bot unassigned this long exits 0 (`reserve_expired`)",
    ),
    Setting(
        "BOT_TRANSPORT", "bot-host", ENUM, default="webrtc", choices=("webrtc", "daily", "websocket"),
        meaning=(
            "the transport of a bot started without a room URL or `--transport`; an image sets its own (the bot "
            "image: `daily`), and a phone call's cold bot is handed `websocket` with its session"
        ),
    ),
    Setting(
        "BOT_ICE_SERVERS", "bot-host", LIST,
        shown="unset (host candidates only)",
        meaning="WebRTC: comma-separated STUN/TURN URLs without credentials",
    ),
    Setting(
        "BOT_TURN_TRANSPORT", "bot-host", ENUM, choices=("tcp",),
        shown="unset (every URL)",
        meaning=(
            "`tcp`: the bot keeps only its TURN URLs over TCP or TLS (`?transport=tcp`, `turns:`), in their "
            "order, for a machine that can send no UDP (the GCP stack sets it on its Cloud Run bot job). aiortc "
            "uses the first TURN URL it is given and no other, and the relay's list starts with UDP"
        ),
    ),
    Setting(
        "BOT_LOG_LEVEL", "bot-host", ENUM, default="INFO",
        choices=("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"),  # loguru's levels
        meaning="the bot's log level on stderr",
    ),
    Setting(
        "BOT_MACHINE_ID", "bot-host", STRING,
        shown="`FLY_MACHINE_ID` or the host name",
        meaning="what the bot's channel `hello` says; the providers set them",
    ),
    Setting(
        "BOT_IMAGE_DIGEST", "bot-host", STRING, default="dev", row="BOT_MACHINE_ID",
    ),
    Setting(
        "FLY_MACHINE_ID", "bot-host", STRING,
        shown="set by Fly",
        meaning="the bot's machine id on Fly, when `BOT_MACHINE_ID` is unset",
    ),
    Setting(
        "HOSTNAME", "bot-host", STRING,
        shown="set by the container runtime",
        meaning=(
            "a Kubernetes pod's bot (`BOT_IDENTITY=k8s`): its pod's name, which its hello names as its machine id "
            "when `BOT_MACHINE_ID` is unset (a warm pool's bot has no other id: "
            "[kubernetes.md](kubernetes.md#the-warm-path)); read by no other bot"
        ),
    ),
    Setting(
        "BOT_CHANNEL_CA_FILE", "bot-host", STRING,
        shown="unset",
        example="`/var/run/secrets/voicefleet/channel-ca.crt`",
        meaning=(
            "a PEM CA certificate: a `wss://` channel's certificate (and its media sockets' and recording "
            "parts') must chain to it and name the host the URL names; a certificate it does not vouch for ends "
            "the bot with one line naming this setting. Never unverified. The Kubernetes stack mounts its own "
            "CA there ([kubernetes.md](kubernetes.md#the-channels-tls)); a local dispatcher hands it to its "
            "bots. Unset: the system's CAs"
        ),
    ),
    Setting(
        "BOT_IDENTITY", "bot-host", STRING,
        shown="unset",
        meaning=(
            "where the bot gets the identity its hello carries: `gce` (its VM's metadata server), `cloudrun` (its "
            "task's metadata server: a standard token naming its service account), `fly` (its Machine's API "
            "socket), `ecs` (a `sts:GetCallerIdentity` presigned with its task role's credentials, from "
            "`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on the ECS agent, or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, "
            "for the STS of `AWS_REGION`, or `AWS_ENDPOINT_URL_STS`); `local` (a nonce written through its launch "
            "socket); `modal` (the token Modal puts in its Sandbox, below); `k8s` (its pod's projected "
            "ServiceAccount token, below); the providers set it with the launch values. Unset: none"
        ),
    ),
    Setting(
        "BOT_IDENTITY_FD", "bot-host", STRING,
        shown="set by the local dispatcher",
        meaning=(
            "the descriptor of the launch socket a local bot writes each dial's nonce through "
            "(`BOT_IDENTITY=local`; not a secret: the socket cannot be opened from elsewhere)"
        ),
    ),
    Setting(
        "CLOUD_RUN_EXECUTION", "bot-host", STRING,
        shown="set by Cloud Run",
        meaning=(
            "the task's execution, which a Cloud Run bot's hello names as its machine id "
            "(`BOT_IDENTITY=cloudrun`)"
        ),
    ),
    Setting(
        "VOICEFLEET_EXECUTION_NONCE", "bot-host", STRING,
        shown="set by the dispatcher",
        meaning=(
            "a Cloud Run execution's own nonce, in each run's env: the bot's token carries it in its audience "
            "(`BOT_IDENTITY=cloudrun`, docs/security.md)"
        ),
    ),
    Setting(
        "GCE_METADATA_HOST", "bot-host", STRING, default="metadata.google.internal",
        meaning=(
            "the metadata server's host, as Google's client libraries read it (`BOT_IDENTITY=gce` or `cloudrun`)"
        ),
    ),
    Setting(
        "MODAL_IDENTITY_TOKEN_FILE", "bot-host", STRING,
        shown="set by Modal",
        meaning=(
            "a Modal Sandbox's OIDC identity token (`BOT_IDENTITY=modal`): the file's content, reread for each "
            "dial (Modal rewrites it as the token renews), else the variable; the `modal` client reads them in "
            "that order"
        ),
    ),
    Setting(
        "MODAL_IDENTITY_TOKEN", "bot-host", STRING, secret=True, row="MODAL_IDENTITY_TOKEN_FILE",
        shown="set by Modal",
    ),
    Setting(
        "BOT_FLY_API_SOCKET", "bot-host", STRING, default="/.fly/api",
        meaning="the Machine's API socket (`BOT_IDENTITY=fly`)",
    ),
    Setting(
        "BOT_K8S_TOKEN_FILE", "bot-host", STRING, default="/var/run/secrets/voicefleet/token",
        meaning=(
            "a Kubernetes pod's projected ServiceAccount token of voicefleet's audience, reread for each dial "
            "(`BOT_IDENTITY=k8s`; the kubelet refreshes it)"
        ),
    ),
    Setting(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "bot-host", STRING,
        shown="set by ECS",
        meaning=(
            "where the task role's credentials are (`http://169.254.170.2<relative URI>`, or the full URI with "
            "that `Authorization` header), as the AWS SDKs read them (`BOT_IDENTITY=ecs`)"
        ),
    ),
    Setting(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "bot-host", STRING, row="AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        shown="set by ECS",
    ),
    Setting(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN", "bot-host", STRING, secret=True, row="AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        shown="set by ECS",
    ),
    Setting(
        "VOICEFLEET_ICE_LOOPBACK", "bot-host", BOOLEAN, default="0",
        meaning=(
            "`1`: gather only 127.0.0.1 candidates, for hosts whose only interface is `lo` (aioice skips loopback "
            "otherwise); set it for the test client too"
        ),
    ),
    Setting(
        "VOICEFLEET_AUDIO_JITTER_PREFETCH", "bot-host", INTEGER, default="0", minimum=0, maximum=15,
        meaning=(
            "WebRTC: packets the inbound audio jitter buffer holds back: `0` hands each packet on as it arrives, "
            "in order (aiortc's own is `4` = 80 ms) ([bot.md](bot.md#turn-latency))"
        ),
    ),
    Setting(
        "VOICEFLEET_TRACE", "bot-host", STRING,
        shown="unset",
        meaning=(
            "`1`: a per-turn latency trace as JSON lines on stderr; a path: appended to that file "
            "(`examples/parrot/turn_trace.py`)"
        ),
    ),
    Setting(
        "PYTHONPATH", "bot-host", STRING,
        shown="inherited",
        meaning=(
            "local bots get the repository prepended, so `python -m bot` finds it; a bot run isolated (the "
            "image's `python -I`) refuses to start with it set"
        ),
    ),
    Setting(
        "PYTHONSTARTUP", "bot-host", STRING,
        shown="unset",
        meaning=(
            "a bot run isolated (the image's `python -I -u -B -m bot`) refuses to start, in one line, with any of "
            "them set: each would run code that is not the bot's (bot/environment_check.py)"
        ),
    ),
    Setting(
        "PYTHONHOME", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "PYTHONINSPECT", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "PYTHONUSERBASE", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "PYTHONWARNINGS", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "PYTHONBREAKPOINT", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "PYTHONPLATLIBDIR", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "BROWSER", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "LD_PRELOAD", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "LD_AUDIT", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "LD_LIBRARY_PATH", "bot-host", STRING, row="PYTHONSTARTUP",
        shown="unset",
    ),
    Setting(
        "VOICEFLEET_SESSION_ID", "bot-session", STRING, shown="`local-<random>`",
        meaning="the session id, in every event line",
    ),
    Setting(
        "VOICEFLEET_BODY", "bot-session", STRING, default="{}",
        meaning="the JSON object the client passed as `body` to `POST /start`",
    ),
    Setting(
        "DAILY_ROOM_URL", "bot-session", STRING,
        shown="unset",
        meaning="a Daily session's room and the bot's meeting token",
    ),
    Setting(
        "DAILY_TOKEN", "bot-session", STRING, secret=True, row="DAILY_ROOM_URL",
        shown="unset",
    ),
    Setting(
        "VOICEFLEET_ICE_CONFIG", "bot-session", STRING,
        shown="unset",
        meaning=(
            "a WebRTC session's ICE configuration as JSON, `{\"iceServers\": [{\"urls\", \"username\", \"credential\"}], "
            "\"iceTransportPolicy\": \"relay\"}`: the bot's own TURN credentials ([webrtc.md](webrtc.md)); with "
            "`relay` the bot gathers relay candidates only. A warm bot gets the same object with its assignment"
        ),
    ),
    Setting(
        "VOICEFLEET_SOURCE_REVISION", "deploying", STRING,
        shown="unset",
        meaning="an extra registry tag for the images (their digests follow their content)",
    ),
    Setting(
        "VOICEFLEET_URL", "cli", STRING, default="http://127.0.0.1:8080",
        meaning="the dispatcher the command calls",
    ),
    Setting(
        "VOICEFLEET_ADMIN_KEY", "cli", STRING, secret=True,
        shown="unset",
        meaning=(
            "the admin key it sends as `Authorization: Bearer`, one of the dispatcher's `DISPATCHER_ADMIN_KEYS`; "
            "never a flag. Unset, it sends none, which only a local dispatcher without keys accepts"
        ),
    ),
    Setting(
        "VOICEFLEET_API_KEY", "cli", STRING, secret=True,
        shown="unset",
        meaning=(
            "a client key, one of the dispatcher's `DISPATCHER_API_KEYS`, sent as `Authorization: Bearer`: the "
            "key `voicefleet loadtest` starts its sessions with, and the one `voicefleet sessions` and "
            "`voicefleet session ID` read with (any key of a name lists and reads that name's sessions); never a "
            "flag. Unset, `loadtest` and `session` send none, which only a local dispatcher without keys accepts, "
            "and `sessions` sends the admin key (every key's sessions) ([cli.md](cli.md#sessions)). `voicefleet "
            "session` sends the admin key instead when `VOICEFLEET_ADMIN_KEY` is set"
        ),
    ),
    Setting(
        "VOICEFLEET_SIP_EVAL_TOKEN", "cli", STRING, secret=True,
        shown="unset",
        meaning=(
            "set by `voicefleet eval` and `voicefleet loadtest` for their own SIP caller process alone (a call's "
            "one-use eval token, sent as `X-Voicefleet-Eval`: [sip.md](sip.md#an-evals-call-marked-and-pinned)), "
            "never a command line's; not yours to set"
        ),
    ),
    Setting(
        "VOICEFLEET_JUDGE_URL", "cli", STRING,
        shown="unset",
        meaning=(
            "the OpenAI-compatible API (its base, e.g. `https://api.openai.com/v1`) that judges scenarios' rubrics "
            "in `voicefleet eval` and `voicefleet releases smoke --suite`, as `--judge-url` does; unset, rubrics "
            "are skipped and the deterministic checks decide ([evals.md](evals.md#a-rubric-judged-by-a-model-you-name))"
        ),
    ),
    Setting(
        "VOICEFLEET_JUDGE_MODEL", "cli", STRING,
        shown="unset",
        meaning="the model that judges the rubrics, as `--judge-model` does (with `VOICEFLEET_JUDGE_URL`)",
    ),
    Setting(
        "VOICEFLEET_EVAL_BOT_BEHIND", "cli", NUMBER, minimum=0, maximum=3600, default="2.0",
        meaning=(
            "seconds: how far a bot's machine may hold it behind real time in a turn (its loop late, waiting for "
            "a CPU) before a failure there is inconclusive in `voicefleet eval` and `voicefleet releases smoke "
            "--suite` ([evals.md](evals.md#a-bot-whose-machine-was-busy))"
        ),
    ),
    Setting(
        "VOICEFLEET_EVAL_MAX_INCONCLUSIVE", "cli", NUMBER, minimum=0, maximum=1, default="0.1",
        meaning=(
            "the most of a run's calls (a share) that may be inconclusive for the run to pass; more make it "
            "inconclusive (exit 4, no gate verdict recorded)"
        ),
    ),
    Setting(
        "VOICEFLEET_JUDGE_API_KEY", "cli", STRING, secret=True,
        shown="unset",
        meaning="the judge's API key, sent as `Authorization: Bearer` to `VOICEFLEET_JUDGE_URL`; never a flag",
    ),
    Setting(
        "VOICEFLEET_CONFIG_DIR", "cli", STRING, default="$XDG_CONFIG_HOME/voicefleet",
        meaning=(
            "where `voicefleet context` keeps its `contexts.json` (addresses and where each key comes from, never "
            "a key) ([cli.md](cli.md#several-deployments-contexts))"
        ),
    ),
    Setting(
        "XDG_CONFIG_HOME", "cli", STRING, default="~/.config",
        meaning="the user's configuration directory, under which `VOICEFLEET_CONFIG_DIR`'s default is",
    ),
    Setting(
        "XDG_CACHE_HOME", "cli", STRING, default="~/.cache",
        meaning=(
            "the user's cache directory: `voicefleet config … --stack` keeps what a stack's program gave its "
            "dispatcher (plain values and the names of secrets, never a secret's value) under "
            "`voicefleet/config-check` in it, for the next check of the unchanged stack "
            "([cli.md](cli.md#configuration))"
        ),
    ),
)
