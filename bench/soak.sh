#!/usr/bin/env bash
# The flakiness bar: N full runs of the README's test command in a row while another process keeps
# one core busy (a plain `while True: pass`). Prints one line per run and the failures, if any.
# Paths or other pytest arguments after RUNS soak only those (the folders a change touched).
#
#   bash bench/soak.sh [RUNS=5] [PYTEST_ARGS…]   (logs: $TMPDIR/voicefleet-soak.<run>.log)
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
logs=${TMPDIR:-/tmp}/voicefleet-soak
python3 -c 'while True: pass' &
busy=$!
trap 'kill $busy' EXIT
echo "commit $(git rev-parse --short HEAD), $runs runs, one core kept busy (pid $busy)"
failed=0
for run in $(seq 1 "$runs"); do
  began=$(date +%s)
  uv run --all-groups pytest -q -p no:cacheprovider "$@" > "$logs.$run.log" 2>&1
  status=$?
  echo "run $run: exit $status in $(( $(date +%s) - began )) s, load $(cut -d' ' -f1-3 /proc/loadavg): $(tail -1 "$logs.$run.log")"
  if [ $status -ne 0 ]; then
    failed=1
    grep -E "^(FAILED|ERROR)" "$logs.$run.log"
  fi
done
exit $failed
