#!/usr/bin/env bash
# Stop exactly what cluster-up.sh started (kwokctl's components by the pids it recorded, the LWS
# controller, Volcano scheduler, S3 server, Hugging Face mirror and the autoscaling test's KEDA and Prometheus by their pid
# files) and remove the state under .state/testbed. Safe to run twice.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$TESTBED_BIN:$PATH" KWOK_WORKDIR="$TESTBED_STATE/kwok"

# The real nodes first: their containers, mounts, namespaces and cgroups must be gone before the
# state is removed (nodes-down.sh refuses, and so do we, while mounts remain under it).
bash "$TESTBED_REPO_ROOT/scripts/testbed/nodes-down.sh"

# A recorded pid is ours only while its command line still names our state dir (pids get reused,
# e.g. after a reboot); anything else is left alone.
ours() { [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF "$TESTBED_STATE"; }

# Every pid file we or kwokctl wrote (kwokctl records each component it starts). They are stopped
# here, not through `kwokctl delete`, which signals whatever the files hold and does not wait.
pidfiles=("$TESTBED_STATE"/pids/*.pid "$KWOK_WORKDIR/clusters/$TESTBED_CLUSTER_NAME"/pids/*.pid)
pids=()
for pidfile in "${pidfiles[@]}"; do
  [[ -e $pidfile ]] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && ours "$pid"; then
    log "stopping $(basename "$pidfile" .pid) (pid $pid)"
    pids+=("$pid")
  fi
done
# the state is thrown away, so no graceful drain is needed: TERM all, KILL what is left after 5 s
if [[ ${#pids[@]} -gt 0 ]]; then
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [[ ${#alive[@]} -eq 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null; done
fi
rm -rf "$TESTBED_STATE"
log "test bed stopped and its state removed"
