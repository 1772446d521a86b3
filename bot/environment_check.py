"""An isolated bot refuses to start with variables that would run code other than its own.

The images run the host as `python -I -u -B -m bot` (images/bot.Dockerfile): Python ignores every
PYTHON* variable and the user site. But the environment is whoever set the task's: on Cloud Run,
anyone with `run.jobs.runWithOverrides` sets a run's env and args. Some variables act whatever
Python's flags: `BROWSER`, `LD_*`, PYTHON* in any Python the bot starts. None has a use in a bot's
task, so an isolated host does not run on with one set: one line, exit 2.

The Cloud Run job also starts the host with `-X voicefleet_env=NAME,…` (stacks/gcp/bot_job.py):
its template's env names and the names the dispatcher sends. A run's overrides set env and args,
never the command, so that list is the stack's. With it the host refuses any variable outside it,
the image's own (IMAGE_VARIABLES), the channel contract's and the platform's (a `*_BASE_URL`,
`HTTPS_PROXY`, `SSL_CERT_FILE`, `OPENSSL_CONF`… would send its keys elsewhere), and any argument:
such a job's bot takes everything from its env. (The dynamic loader reads LD_* before Python
starts: refusing stops the bot; docs/security.md.)

TWILIO_REGION and TWILIO_EDGE (a stack's twilioRegion, twilioEdge) name the host Pipecat's hang-up sends the
account's credential to, `api.{edge}.{region}.twilio.com`: an isolated host refuses either unless it is one
DNS label, so no value (`evil.example/#`) moves that host off twilio.com.

Only when isolated: a developer's `python -m bot` and MACHINES=local's bots (not isolated) put
the repository on PYTHONPATH on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from botchannel import contract

INJECTING = (
    "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PYTHONINSPECT", "PYTHONUSERBASE", "PYTHONWARNINGS",
    "PYTHONBREAKPOINT", "PYTHONPLATLIBDIR", "BROWSER",
    "LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH",
)
ALLOWED_OPTION = "voicefleet_env"  # `python -X voicefleet_env=A,B -I -m bot`: the job's allow-list
# The bot image's runtime ENV (images/bot.Dockerfile, a test holds them equal) and its Python base's.
IMAGE_VARIABLES = (
    "PATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "BOT_FILE", "BOT_MODELS_DIR", "HF_HOME",
    "XDG_CACHE_HOME", "NLTK_DATA", "TORCH_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
    "HF_HUB_DISABLE_TELEMETRY", "BOT_TRANSPORT", "LANG", "GPG_KEY", "PYTHON_VERSION", "PYTHON_SHA256",
)
CONTRACT_VARIABLES = (
    contract.CHANNEL_URL_VARIABLE, contract.CHANNEL_TOKEN_VARIABLE, contract.MACHINE_ID_VARIABLE,
    contract.IMAGE_VARIABLE, contract.IDENTITY_VARIABLE, contract.IDENTITY_FD_VARIABLE,
    contract.EXECUTION_NONCE_VARIABLE, contract.CLOUD_RUN_EXECUTION_VARIABLE,
)
# What the container runtime and the platforms set (Cloud Run's CLOUD_RUN_JOB, _EXECUTION, _TASK_*).
PLATFORM_VARIABLES = ("HOME", "HOSTNAME", "TERM", "PORT", "PWD", "SHLVL")
PLATFORM_PREFIXES = ("CLOUD_RUN_", "K_", "LC_")
# Parts of the Twilio API's host name (pipecat/serializers/twilio.py `_build_call_resource_url`).
TWILIO_HOST_PARTS = ("TWILIO_REGION", "TWILIO_EDGE")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def refusal(environ: Mapping[str, str], *, isolated: bool, allowed: object = None,
            args: Sequence[str] = ()) -> str | None:
    """Why an isolated host must not start in `environ`, or None. `allowed`: the `-X voicefleet_env`
    option's value (sys._xoptions), None without one; `args`: the host's command-line arguments."""
    if not isolated:
        return None
    found = [name for name in INJECTING if environ.get(name)]
    if found:
        return (f"bot: refusing to start: {', '.join(found)} set, which would run code that is not the bot's "
                "(a task's environment is whoever ran it; unset them)")
    if off_host := [part for part in TWILIO_HOST_PARTS
                    if environ.get(part) and not _HOST_LABEL.fullmatch(environ[part])]:
        return (f"bot: refusing to start: {', '.join(off_host)} is not one DNS label (ie1, dublin), so Twilio's "
                "host built from it would not be Twilio's: set the stack's twilioRegion and twilioEdge, not the run's")
    if allowed is None:
        return None
    names = {*IMAGE_VARIABLES, *CONTRACT_VARIABLES, *PLATFORM_VARIABLES,
             *(str(allowed).split(",") if isinstance(allowed, str) else ())}
    if stray := sorted(n for n in environ if n not in names and not n.startswith(PLATFORM_PREFIXES)):
        return (f"bot: refusing to start: {', '.join(stray)} set, outside the job's own variables "
                f"(-X {ALLOWED_OPTION}; a run's overrides must not add any)")
    if args:
        return f"bot: refusing to start: {len(args)} command-line argument(s): this job's bot takes none"
    return None
