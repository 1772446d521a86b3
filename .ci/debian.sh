# Debian packages for CI, sourced by .ci/run and images/ci/build.sh. Both wait for another apt (a
# fresh machine's unattended upgrades, a second CI run beside this one) instead of failing at once
# on its lock, as apt-get does by default.

# `apt_install [apt-get install options] packages…`: DPkg::Lock::Timeout makes the install wait for
# the dpkg lock; -q (not -qq) so that apt says whom it waits for, which is shown once (apt repeats
# it every second).
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "$@" \
    | { shown=""; while IFS= read -r line; do
          if [[ -z $shown && $line == "Waiting for cache lock"* ]]; then echo "$line"; shown=1; fi
        done; }
  return "${PIPESTATUS[0]}"
}

# `debian_install …`: the package lists brought up to date, then apt_install. The lists' lock of
# `apt-get update` is not one that option waits for, so a refused update is tried again, 6 times
# in all, with a growing pause.
debian_install() {
  local attempt
  for attempt in 1 2 3 4 5 6; do
    apt-get update -qq && break
    if [ "$attempt" -eq 6 ]; then
      echo "apt-get update failed 6 times: another apt holding the package lists, or no network" >&2
      return 1
    fi
    sleep $((attempt * 5))
  done
  apt_install "$@"
}
