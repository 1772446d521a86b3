"""The bot VM's startup script (Container-Optimized OS).

COS runs `startup-script` from metadata as root at boot. It copies this session's values from
instance metadata into an env file that only root can read (mode 0600, on tmpfs), creates the
container from it, deletes the file, runs the bot, and powers the VM off when the bot exits.
Session values never appear on a command line (`ps` on the host would show them). The gce
provider's reaper deletes powered-off instances; `maxRunDuration` + DELETE is the hard stop.
The deprecated `gce-container-declaration` agent is not used.
"""

from __future__ import annotations

from stacks.contract import BOT_CONTAINER_NAME, GCE_IMAGE_METADATA_KEY, GCE_SESSION_METADATA

_LINES = "\n".join(f"put {env} {key}" for key, env in GCE_SESSION_METADATA.items())

STARTUP_SCRIPT = f"""#!/bin/bash
# voicefleet bot VM: one voice session, then power off.
set -euo pipefail
umask 077
MD=http://metadata.google.internal/computeMetadata/v1/instance/attributes
md() {{ curl -sf -H 'Metadata-Flavor: Google' "$MD/$1"; }}

ENV_FILE=/run/voicefleet/bot.env
install -d -m 0700 /run/voicefleet
install -m 0600 /dev/null "$ENV_FILE"
# One line per variable; values must not contain newlines (the dispatcher sends compact JSON).
put() {{ printf '%s=%s\\n' "$1" "$(md "$2")" >> "$ENV_FILE"; }}
{_LINES}

IMAGE="$(md {GCE_IMAGE_METADATA_KEY})"
# /root is read-only on COS: keep the registry credential helper's config on a writable path.
export HOME=/var/lib/voicefleet
install -d -m 0700 "$HOME"
docker-credential-gcr configure-docker --registries="${{IMAGE%%/*}}"
docker pull "$IMAGE"
docker create --name {BOT_CONTAINER_NAME} --network host --init --stop-timeout 30 \\
  --log-driver gcplogs --env-file "$ENV_FILE" "$IMAGE"
rm -f "$ENV_FILE"
docker start --attach {BOT_CONTAINER_NAME} || true
poweroff
"""
