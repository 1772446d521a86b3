"""The bot VM's startup script (Container-Optimized OS).

COS runs `startup-script` from metadata as root at boot. It copies this session's values from
instance metadata into an env file that only root can read (mode 0600, on tmpfs), adds the bot's
provider keys read from Secret Manager with the VM's own service account (the template's
`bot-secrets` metadata holds pinned version *names*, never values), creates the container from
the file, deletes the file, runs the bot, and then **deletes its own VM** through the Compute API.
Not `poweroff`: a stopped VM is TERMINATED, which clears the maxRunDuration timer, so it would
keep its disk until a reaper ran (review item 4). If the delete fails after its retries, the VM
powers off and the reaper removes it; `maxRunDuration` + DELETE remains the outer bound.
Session values never appear on a command line (`ps` on the host would show them). The deprecated
`gce-container-declaration` agent is not used.
"""

from __future__ import annotations

from botchannel.contract import CHANNEL_URL_VARIABLE
from stacks.shared.contract import (
    BOT_CONTAINER_NAME,
    GCE_CHANNEL_URL_METADATA_KEY,
    GCE_IMAGE_METADATA_KEY,
    GCE_RESERVE_METADATA,
    GCE_SECRETS_METADATA_KEY,
    GCE_SESSION_METADATA,
    GCE_SETTINGS_METADATA_KEY,
    GCE_WEBRTC_IMAGE_METADATA_KEY,
)

_LINES = "\n".join(f"put {env} {key}" for key, env in GCE_SESSION_METADATA.items())
_RESERVE_PAIRS = " ".join(f"{key}={env}" for key, env in GCE_RESERVE_METADATA.items())

# Shell functions for a VM that reads Secret Manager with its own service account: `token` prints
# an access token from the metadata server, `secret REF` the value of projects/P/secrets/S/versions/N
# (the API answers the payload base64-encoded). Also used by the TURN relay (stacks/gcp/relay.py).
READ_AT_BOOT_FUNCTIONS = (
    """MDROOT=http://metadata.google.internal/computeMetadata/v1
token() { curl -sf --max-time 10 --retry 3 -H 'Metadata-Flavor: Google' \\
  "$MDROOT/instance/service-accounts/default/token" | sed -n 's/.*"access_token" *: *"\\([^"]*\\)".*/\\1/p'; }
secret() { curl -sf --max-time 10 --retry 3 -H "Authorization: Bearer $(token)" \\
  "https://secretmanager.googleapis.com/v1/$1:access" | sed -n 's/.*"data" *: *"\\([^"]*\\)".*/\\1/p' | base64 -d; }"""
)



def fetch_function(refs: dict[str, str]) -> str:
    """bash: `fetch NAME` prints the secret at its pinned version (`refs`: NAME -> projects/P/secrets/S/versions/N),
    read with the VM's own account (the TURN relay's and the SIP edge's boot)."""
    cases = "\n".join(f"    {name}) secret '{ref}';;" for name, ref in refs.items())
    return f"""{READ_AT_BOOT_FUNCTIONS}
fetch() {{
  case "$1" in
{cases}
  esac
}}"""


STARTUP_SCRIPT = f"""#!/bin/bash
# voicefleet bot VM: one voice session, then delete this VM.
set -euo pipefail
umask 077
{READ_AT_BOOT_FUNCTIONS}
MD=$MDROOT/instance/attributes
md() {{ curl -sf --max-time 10 --retry 3 -H 'Metadata-Flavor: Google' "$MD/$1"; }}

delete_self() {{
  local project zone name
  project=$(curl -sf -H 'Metadata-Flavor: Google' "$MDROOT/project/project-id")
  zone=$(curl -sf -H 'Metadata-Flavor: Google' "$MDROOT/instance/zone"); zone=${{zone##*/}}
  name=$(curl -sf -H 'Metadata-Flavor: Google' "$MDROOT/instance/name")
  curl -sf --max-time 20 --retry 5 --retry-all-errors -X DELETE -H "Authorization: Bearer $(token)" \\
    "https://compute.googleapis.com/compute/v1/projects/$project/zones/$zone/instances/$name" >/dev/null \\
    || poweroff
}}
# Whatever happens below (a pull that fails, a crash), the VM ends its own life.
trap delete_self EXIT

ENV_FILE=/run/voicefleet/bot.env
install -d -m 0700 /run/voicefleet
install -m 0600 /dev/null "$ENV_FILE"
# One line per variable; values must not contain newlines (the dispatcher sends compact JSON).
# An empty value is no value: it must not override the image's own default (BOT_TRANSPORT).
put() {{ v="$(md "$2" || true)"; [ -z "$v" ] || printf '%s=%s\\n' "$1" "$v" >> "$ENV_FILE"; }}
{_LINES}

# The dispatcher's control channel (a stack with botChannelToken): where to dial; the credential is
# one of the secret references below.
CHANNEL_URL="$(md {GCE_CHANNEL_URL_METADATA_KEY} 2>/dev/null || true)"
if [ -n "$CHANNEL_URL" ]; then printf '%s=%s\\n' {CHANNEL_URL_VARIABLE} "$CHANNEL_URL" >> "$ENV_FILE"; fi
# The bots' own settings (stacks/config/observability.py): KEY=value pairs, commas between them.
for setting in $(md {GCE_SETTINGS_METADATA_KEY} 2>/dev/null | tr ',' ' '); do
  printf '%s\\n' "$setting" >> "$ENV_FILE"
done
# A reserve VM (started with no session: dispatcher/machines/gce/reserve.py) names its bot and image.
for pair in {_RESERVE_PAIRS}; do
  value="$(md "${{pair%%=*}}" 2>/dev/null || true)"
  if [ -n "$value" ]; then printf '%s=%s\\n' "${{pair#*=}}" "$value" >> "$ENV_FILE"; fi
done

# Provider keys and the channel credential: ENV=projects/P/secrets/S/versions/N pairs; the payload
# is base64 in the answer.
for ref in $(md {GCE_SECRETS_METADATA_KEY} 2>/dev/null | tr ',' ' '); do
  printf '%s=%s\\n' "${{ref%%=*}}" "$(secret "${{ref#*=}}")" >> "$ENV_FILE"
done

# A session without a Daily room is a SmallWebRTC session: the WebRTC image (when the stack has a
# TURN relay and so built one), else the Daily image.
IMAGE="$(md {GCE_IMAGE_METADATA_KEY})"
if [ -z "$(md daily-room-url 2>/dev/null)" ] && WEBRTC="$(md {GCE_WEBRTC_IMAGE_METADATA_KEY} 2>/dev/null)" \\
   && [ -n "$WEBRTC" ]; then
  IMAGE=$WEBRTC
fi
# /root is read-only on COS: keep the registry credential helper's config on a writable path.
export HOME=/var/lib/voicefleet
install -d -m 0700 "$HOME"
docker-credential-gcr configure-docker --registries="${{IMAGE%%/*}}"
docker pull "$IMAGE"
# The image's own tini is PID 1 (no --init: that would run a second init in front of it).
docker create --name {BOT_CONTAINER_NAME} --network host --stop-timeout 30 \\
  --log-driver gcplogs --env-file "$ENV_FILE" "$IMAGE"
rm -f "$ENV_FILE"
docker start --attach {BOT_CONTAINER_NAME} || true
"""
