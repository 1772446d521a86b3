#!/bin/sh
# Install a bot project's dependencies into /opt/venv (the bot image's build stage runs this with
# the project bind-mounted read-only at the working directory; docs/images.md "Bot image stages").
#   install_project.sh [PACKAGE_TO_LEAVE_OUT ...]
# pyproject.toml + uv.lock: exactly the locked versions (`--locked`: a lock that no longer matches
# pyproject.toml fails here, as Pipecat Cloud's template does), without the project itself and
# without the dev group, minus the named packages. requirements.txt: installed as written.
# Then the host's own requirements (host_requirements.txt, next to this script), each only if the
# project's closure lacks it.
set -eu
python="$UV_PROJECT_ENVIRONMENT/bin/python"
if [ -f uv.lock ]; then
  leave_out=""
  for package in "$@"; do leave_out="$leave_out --no-install-package $package"; done
  # shellcheck disable=SC2086 # one word per flag and package
  uv sync --locked --no-dev --no-install-project $leave_out
elif [ -f requirements.txt ]; then
  [ "$#" -eq 0 ] || echo "install_project: leaving packages out needs uv.lock; installing requirements.txt whole" >&2
  uv venv --quiet "$UV_PROJECT_ENVIRONMENT"
  uv pip install --python "$python" --requirement requirements.txt
else
  echo "install_project: no uv.lock or requirements.txt in the bot project" >&2
  exit 1
fi
grep -v '^#' "$(dirname "$0")/host_requirements.txt" | while read -r pin; do
  [ -n "$pin" ] || continue
  if ! uv pip show --quiet --python "$python" "${pin%%==*}" >/dev/null 2>&1; then
    echo "install_project: the project lacks ${pin%%==*}, which voicefleet's host imports: adding $pin"
    uv pip install --python "$python" "$pin"
  fi
done
