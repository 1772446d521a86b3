#!/usr/bin/env bash
# Build both images for real with buildah (no Docker engine), then run and check each one without
# an engine (images/ci/run_image.py) and print their sizes. Called by .ci/run; docs/images.md
# explains every step and every difference between the local stand-in bases and the real ones.
#
#   images/ci/build.sh            # stand-in bases unless the real ones can be pulled
#   VOICEFLEET_REAL_BASES=1 ...   # insist on python:3.11.14-slim-trixie and ghcr.io/astral-sh/uv:0.13.8
#   BOT_PROJECT=path/to/project  # the bot project both bot images are built from (default: the parrot
#                                  example, as a stack's voicefleet:botProject default)
#   BOT_IMAGES_ONLY=1 ...        # only the bot images (another project's, beside the default build)
#   BOT_IMAGE_BUDGET_MB=700 ...  # that project's closure budget, raised knowingly (a stack's botImageBudgetMb);
#                                  unset, another project's bot image of any size passes, with a note over
#                                  voicefleet's own size; the parrot's is held to voicefleet's own budget
#   STACK=aws-prod ...           # build what that stack builds: its botProject, its botImageBudgetMb, and the
#                                  SmallWebRTC image only with its TURN relay (stacks/tools/stack_images.py)
#   images/ci/build.sh --images  # only print the images it would build, each with its closure budget in MB
#   images/ci/build.sh --check-size IMAGE MB   # only the size check the build ends with, on a size given
#                                              # (no build): what a built closure of MB would be told
#
# Needs root (buildah with chroot isolation, debootstrap, unshare). Everything it installs comes
# from Debian (buildah, debootstrap, iproute2) or PyPI (the uv wheel); nothing from elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."

REAL_PYTHON=python:3.11.14-slim-trixie
REAL_UV=ghcr.io/astral-sh/uv:0.13.8
UV_VERSION=0.13.8  # the uv that wrote uv.lock (images/*.Dockerfile UV_IMAGE)
WORK=${VOICEFLEET_IMAGE_WORK:-/var/tmp/voicefleet-images}
if [[ -n "${STACK:-}" ]]; then
  # The stack's own values, as the plan reads them, so the plan and the build hold the same images to
  # the same budget; a second source of either would let them disagree.
  [[ -n "${BOT_PROJECT:-}${BOT_IMAGE_BUDGET_MB:-}" ]] && {
    echo "STACK=$STACK takes BOT_PROJECT and BOT_IMAGE_BUDGET_MB from stacks/Pulumi.$STACK.yaml: unset them" >&2
    exit 2; }
  stack_values=$(uv run --quiet python -m stacks.tools.stack_images "$STACK") || exit 2
  eval "$stack_values"
  BOT_PROJECT=$bot_project BOT_IMAGE_BUDGET_MB=$budget webrtc_flag=(--webrtc "$webrtc")
else
  webrtc_flag=()
fi
if [[ -z "${STACK:-}${BOT_PROJECT:-}" ]]; then
  # voicefleet's own bot project (CI's build): held to voicefleet's own budget for it, so the parrot
  # that grows fails here; a team's project or stack has only the budget it sets.
  BOT_IMAGE_BUDGET_MB=${BOT_IMAGE_BUDGET_MB:-$(uv run --quiet python -m images.budgets reference bot)}
fi
BOT_PROJECT=${BOT_PROJECT:-examples/parrot}
STORAGE=(--storage-driver overlay)
started=$(date +%s)
step() { echo "== $(( $(date +%s) - started ))s $*"; }
# The bot project is checked as `pulumi preview` checks it (Pipecat in the supported range, …), and its
# [tool.voicefleet] exclude-packages become the build's BOT_EXCLUDE_PACKAGES.
step "bot project $BOT_PROJECT"
uv run --quiet python -m images.bot_project "$BOT_PROJECT"
bot_exclude=$(uv run --quiet python -m images.bot_project --exclude-packages "$BOT_PROJECT")
# Each bot image's transport packages to leave out, as the plan sizes them (none of a transport the
# project's bot.py imports at module level: images/bot_transports.py).
daily_leaves_out=$(uv run --quiet python -m images.bot_project --leaves-out bot "$BOT_PROJECT")
webrtc_leaves_out=$(uv run --quiet python -m images.bot_project --leaves-out bot-webrtc "$BOT_PROJECT")
# The bot images a stack builds for the project (BotProject.images): the Daily one unless its bot.py
# builds SmallWebRTC only, the SmallWebRTC one when it locks Pipecat's webrtc extra.
read -ra bot_images <<<"$(uv run --quiet python -m images.bot_project --images "${webrtc_flag[@]}" "$BOT_PROJECT")"
images=(dispatcher "${bot_images[@]}")
[[ "${BOT_IMAGES_ONLY:-}" == 1 ]] && images=("${bot_images[@]}")
# Each image's closure budget, by the rule the plan applies (images/budgets.py closure_budget_mb);
# worked out before anything is built, so a BOT_IMAGE_BUDGET_MB that is no number stops here.
budget_of() { local own=""; [[ $1 == bot* ]] && own=${BOT_IMAGE_BUDGET_MB:-}; echo "$own"; }
declare -A budgets
for image in "${images[@]}"; do
  budgets[$image]=$(uv run --quiet python -m images.budgets "$image" "$(budget_of "$image")")
done
if [[ "${1:-}" == --images ]]; then
  for image in "${images[@]}"; do echo "$image ${budgets[$image]}"; done
  exit 0
fi
if [[ "${1:-}" == --check-size ]]; then
  # The decision the build ends with (images/ci/run_image.py: images/budgets.py judge), on a size given.
  [[ -n "${budgets[${2:-}]:-}" && -n "${3:-}" ]] || {
    echo "usage: images/ci/build.sh --check-size IMAGE MB (this build's images: ${images[*]})" >&2; exit 2; }
  exec uv run --quiet python -m images.budgets judge "$2" "$3" "$(budget_of "$2")"
fi

mkdir -p "$WORK"
# One buildah store per bot project (images/ci/project_store.sh); every buildah call here and in
# images/ci/run_image.py reads its storage.conf.
source images/ci/project_store.sh
STORE=$(project_store "$WORK" "$BOT_PROJECT")
export CONTAINERS_STORAGE_CONF=$STORE/storage.conf

step "tools"
missing=()
for tool in buildah debootstrap nsenter ip; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  source .ci/debian.sh
  debian_install buildah debootstrap util-linux iproute2
fi
buildah --version

# --- base images ---------------------------------------------------------------------------------
python_image=$REAL_PYTHON uv_image=$REAL_UV
if ! timeout 60 buildah pull "${STORAGE[@]}" -q "$REAL_PYTHON" >/dev/null 2>&1 \
   || ! timeout 60 buildah pull "${STORAGE[@]}" -q "$REAL_UV" >/dev/null 2>&1; then
  [[ "${VOICEFLEET_REAL_BASES:-}" == 1 ]] && { echo "cannot pull the real base images" >&2; exit 1; }
  python_image=localhost/voicefleet-python-standin:3.11 uv_image=localhost/voicefleet-uv-standin:$UV_VERSION
  step "registry unreachable: local stand-in bases ($python_image, $uv_image)"

  # uv stand-in: FROM scratch with /uv and /uvx from PyPI's static musllinux wheel, the same
  # binaries (target x86_64-unknown-linux-musl) the official image carries.
  if ! buildah inspect "${STORAGE[@]}" --type image "$uv_image" >/dev/null 2>&1; then
    rm -rf "$WORK/uv" && mkdir -p "$WORK/uv"
    uvx --from pip pip download --quiet --no-deps --only-binary=:all: --platform "musllinux_1_1_$(uname -m)" \
      -d "$WORK/uv" "uv==$UV_VERSION"
    python3 -m zipfile -e "$WORK"/uv/uv-*.whl "$WORK/uv/x"
    ctr=$(buildah from "${STORAGE[@]}" scratch)
    buildah copy "${STORAGE[@]}" --chmod 0755 "$ctr" "$WORK"/uv/x/uv-*.data/scripts/uv /uv >/dev/null
    buildah copy "${STORAGE[@]}" --chmod 0755 "$ctr" "$WORK"/uv/x/uv-*.data/scripts/uvx /uvx >/dev/null
    buildah commit "${STORAGE[@]}" -q --rm "$ctr" "$uv_image" >/dev/null
  fi

  # python stand-in: debootstrap minbase of this host's Debian release, slimmed like debian-slim,
  # plus ca-certificates/netbase/tzdata, the libraries CPython links against, and a CPython 3.11
  # from this machine at /usr/local (the Dockerfiles use /usr/local/bin/python3.11).
  # Made once per $WORK and kept as a tarball, which each project's store imports in seconds.
  if [[ ! -f "$WORK/python-standin.tar" ]] \
     && ! buildah inspect "${STORAGE[@]}" --type image "$python_image" >/dev/null 2>&1; then
    py=$(uv python find 3.11)
    prefix=$("$py" -c 'import sys; print(sys.base_prefix)')
    # Debian packages that own the shared libraries this CPython and its extension modules load.
    # (tkinter is left out, as in the official slim image's closure we need: it would pull in X11.)
    libs=$(for f in "$prefix"/bin/python3.11 "$prefix"/lib/libpython3.11.so* "$prefix"/lib/python3.11/lib-dynload/*.so; do
             [[ "$f" == *_tkinter* ]] || ldd "$f" 2>/dev/null; done | awk '/=> \//{print $3}' | grep -v "^$prefix" | sort -u)
    pkgs=$(for l in $libs; do dpkg -S "$(readlink -f "$l")" 2>/dev/null || dpkg -S "$l" 2>/dev/null; done \
           | cut -d: -f1 | sort -u | paste -sd, -)
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include="ca-certificates,netbase,tzdata,$pkgs" "$suite" "$WORK/rootfs" \
      http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    root=$WORK/rootfs
    rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
           "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*
    mkdir -p "$root/usr/local/bin" "$root/usr/local/lib"
    cp -a "$prefix/bin/python3.11" "$root/usr/local/bin/"
    cp -a "$prefix"/lib/libpython3.11.so* "$root/usr/local/lib/"
    tar -C "$prefix/lib" --exclude='python3.11/test' --exclude='python3.11/idlelib' --exclude='python3.11/tkinter' \
        --exclude='python3.11/lib-dynload/_tkinter*' --exclude='python3.11/ensurepip' \
        --exclude='__pycache__' --exclude='python3.11/site-packages/*' -cf - python3.11 | tar -C "$root/usr/local/lib" -xf -
    ln -sf python3.11 "$root/usr/local/bin/python3"
    ln -sf python3 "$root/usr/local/bin/python"
    chroot "$root" /sbin/ldconfig
    tar -C "$root" --exclude=./dev --exclude=./proc --exclude=./sys -cf "$WORK/python-standin.tar.part" .
    mv "$WORK/python-standin.tar.part" "$WORK/python-standin.tar"
    rm -rf "$root"
  fi
  if ! buildah inspect "${STORAGE[@]}" --type image "$python_image" >/dev/null 2>&1; then
    ctr=$(buildah from "${STORAGE[@]}" scratch)
    buildah add "${STORAGE[@]}" "$ctr" "$WORK/python-standin.tar" / >/dev/null
    buildah config "${STORAGE[@]}" --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd python3 "$ctr"
    buildah commit "${STORAGE[@]}" -q --rm "$ctr" "$python_image" >/dev/null
  fi
fi

# --- TLS: only when this host reaches package indexes through its own CA (SSL_CERT_FILE set) ------
volumes=()
if [[ -n "${SSL_CERT_FILE:-}" && -f "${SSL_CERT_FILE}" ]]; then
  # uv in a RUN step trusts only its built-in roots; give the build (never the image) the host's
  # bundle and tell uv to use the system store. Mounted for RUN steps only: not in any layer.
  printf 'native-tls = true\n' >"$WORK/uv.toml"
  volumes=(-v "$SSL_CERT_FILE:/etc/ssl/certs/ca-certificates.crt:ro" -v "$WORK/uv.toml:/etc/uv/uv.toml:ro")
  step "TLS: build steps use this host's CA bundle ($SSL_CERT_FILE)"
fi

# --- build ---------------------------------------------------------------------------------------
umask 022  # file modes are part of the layers
step "build: ${images[*]}"
# buildah 1.28's layer cache does not see the content of a RUN's bind mounts: with a changed uv.lock
# or pyproject.toml it would pick a stale `uv sync` layer (it did: a dispatcher without aiohttp), and
# with a changed bot.py a stale copy of the project. So when any of them changed since the last build
# of this project, drop every cached intermediate layer of its store (untagged images; the stand-ins
# are tagged and stay; another project's store is not touched) and build without the cache.
lock_hash=$(build_inputs_hash "$BOT_PROJECT")
cache=()
if [[ "$(cat "$STORE/lock.sha256" 2>/dev/null)" != "$lock_hash" ]]; then
  step "the locks or the project changed since its last build: dropping its store's cached layers"
  buildah rm "${STORAGE[@]}" --all >/dev/null
  for image in dispatcher bot bot-webrtc; do
    buildah rmi "${STORAGE[@]}" "localhost/voicefleet-$image:ci" >/dev/null 2>&1 || true
  done
  buildah rmi "${STORAGE[@]}" --prune >/dev/null 2>&1 || true
  cache=(--no-cache)
fi
# image -> Dockerfile:target (the bot Dockerfile's default target is the Daily bot)
declare -A TARGETS=([dispatcher]=dispatcher:runtime [bot]=bot:runtime [bot-webrtc]=bot:runtime-webrtc)
for image in "${images[@]}"; do
  step "build $image"
  buildah bud "${STORAGE[@]}" --isolation chroot --layers "${cache[@]}" --pull=never "${volumes[@]}" \
    --build-arg "PYTHON_IMAGE=$python_image" --build-arg "UV_IMAGE=$uv_image" \
    --build-context "bot-project=$BOT_PROJECT" --build-arg "BOT_EXCLUDE_PACKAGES=$bot_exclude" \
    --build-arg "BOT_DAILY_LEAVES_OUT=$daily_leaves_out" --build-arg "BOT_WEBRTC_LEAVES_OUT=$webrtc_leaves_out" \
    -f "images/${TARGETS[$image]%%:*}.Dockerfile" --target "${TARGETS[$image]#*:}" \
    -t "localhost/voicefleet-$image:ci" . >"$STORE/build-$image.log" 2>&1 \
    || { tail -40 "$STORE/build-$image.log"; exit 1; }
done
echo "$lock_hash" >"$STORE/lock.sha256"

# --- run and check without an engine ------------------------------------------------------------
status=0
for image in "${images[@]}"; do
  step "run $image"
  python3 -m images.ci.run_image "$image" "localhost/voicefleet-$image:ci" "$(budget_of "$image")" || status=1
done

step "sizes (MB = 10^6 bytes, apparent size of the files; /opt/venv = the runtime closure)"
for role in base "${images[@]}"; do
  [[ $role == base ]] && ref=$python_image || ref=localhost/voicefleet-$role:ci
  ctr=$(buildah from "${STORAGE[@]}" --pull=never "$ref")
  mnt=$(buildah mount "${STORAGE[@]}" "$ctr")
  image=$(du -sb --exclude=./proc --exclude=./sys --exclude=./dev "$mnt" | cut -f1)
  venv=$(du -sb "$mnt/opt/venv" 2>/dev/null | cut -f1 || echo 0)
  [[ $role == base ]] && base=$image
  printf '%-15s image %6.1f MB   above the base %6.1f MB   /opt/venv %6.1f MB\n' "$role" \
    "$(python3 -c "print($image/1e6)")" "$(python3 -c "print(($image-$base)/1e6)")" "$(python3 -c "print(${venv:-0}/1e6)")"
  buildah rm "${STORAGE[@]}" "$ctr" >/dev/null
done
step "done (exit $status)"
exit $status
