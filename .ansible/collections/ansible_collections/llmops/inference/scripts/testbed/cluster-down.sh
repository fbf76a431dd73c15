#!/usr/bin/env bash
# Stop exactly what cluster-up.sh started (kwokctl's components by the pids it recorded, the LWS
# controller by its pid file) and remove the state under .state/testbed. Safe to run twice.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$TESTBED_BIN:$PATH" KWOK_WORKDIR="$TESTBED_STATE/kwok"

stop_pidfile() {
  local pidfile=$1 pid
  [[ -f $pidfile ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $(basename "$pidfile" .pid) (pid $pid)"
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
}

for pidfile in "$TESTBED_STATE"/pids/*.pid; do [[ -e $pidfile ]] && stop_pidfile "$pidfile"; done
if [[ -d $KWOK_WORKDIR/clusters/$TESTBED_CLUSTER_NAME ]]; then
  if command -v kwokctl >/dev/null; then
    log "deleting kwok cluster '$TESTBED_CLUSTER_NAME'"
    kwokctl delete cluster --name "$TESTBED_CLUSTER_NAME" || true
  fi
  # kwokctl records each component's pid; stop any it left behind (binary missing, failed delete)
  for pidfile in "$KWOK_WORKDIR/clusters/$TESTBED_CLUSTER_NAME"/pids/*.pid; do
    [[ -e $pidfile ]] && stop_pidfile "$pidfile"
  done
fi
rm -rf "$TESTBED_STATE"
log "test bed stopped and its state removed"
