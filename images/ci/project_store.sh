# Sourced by images/ci/build.sh: where a bot project's images are built, and when its cache is stale.
#
# One buildah store per bot project, so each keeps its own layer cache: .ci/run builds the parrot and
# then another project, and with one store the second's different lock dropped the first's layers (and
# the first's the second's) on every run. buildah 1.28's cache does not see the content of a RUN's bind
# mounts (the project is one), so two projects must never share a store, or one could be served the
# other's `uv sync` layer.

# project_store WORK PROJECT: makes the project's store under WORK/stores, writes its storage.conf
# (which CONTAINERS_STORAGE_CONF points every buildah call at) and prints the store's folder.
project_store() {
  local work=$1 project real key store
  project=$2
  real=$(realpath "$project")
  # Named by its path in the repository (build.sh runs at the root), so each clone of it builds a
  # project in the same store instead of leaving one of some gigabytes per clone; a project outside
  # the repository by its own path. Its content is checked by build_inputs_hash, as ever.
  where=$(realpath --relative-to="$PWD" "$real")
  [[ $where == ..* ]] && where=$real
  key="$(basename "$real")-$(printf '%s' "$where" | sha256sum | cut -c1-12)"
  store=$work/stores/$key
  mkdir -p "$store"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n' "$store" "$store" \
    >"$store/storage.conf"
  printf '%s\n' "$store"
}

# build_inputs_hash PROJECT: what the RUN steps bind-mount, whose change buildah 1.28 would not see:
# voicefleet's own lock (the dispatcher and the host; run from the repository's root) and the whole
# project as the build context sees it (its lock, bot.py, bake.py, ...; .venv, .git and caches left out).
build_inputs_hash() {
  { cat pyproject.toml uv.lock
    tar -C "$1" --exclude=./.venv --exclude=./.git --exclude='__pycache__' --sort=name \
        --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - .
  } | sha256sum | cut -d' ' -f1
}
