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
cluster_dir="$KWOK_WORKDIR/clusters/$TESTBED_CLUSTER_NAME"
if [[ -d $cluster_dir ]]; then
  # kwokctl signals its components and removes their pid files without waiting for them to exit:
  # remember the pids, let kwokctl stop them, then wait (and force what outlives the wait)
  component_pids=()
  for pidfile in "$cluster_dir"/pids/*.pid; do [[ -e $pidfile ]] && component_pids+=("$(cat "$pidfile")"); done
  if command -v kwokctl >/dev/null; then
    log "deleting kwok cluster '$TESTBED_CLUSTER_NAME' (pids ${component_pids[*]:-none})"
    kwokctl delete cluster --name "$TESTBED_CLUSTER_NAME" 2>/dev/null || true
  fi
  for pid in "${component_pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill "$pid" 2>/dev/null; sleep 1; kill -9 "$pid" 2>/dev/null || true; }
  done
fi
rm -rf "$TESTBED_STATE"
log "test bed stopped and its state removed"
