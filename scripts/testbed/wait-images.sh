#!/usr/bin/env bash
# Wait until the vllm-cpu image, which nodes-up.sh imports in the background, is in the named real nodes'
# containerd (default: every real node). Prints progress; fails when an import ended without it.
#   scripts/testbed/wait-images.sh [llmops-real-0 ...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
NODES_DIR="$TESTBED_STATE/nodes"
TIMEOUT=${TESTBED_IMAGE_WAIT_SECONDS:-900}
nodes=("$@")
if [[ ${#nodes[@]} -eq 0 ]]; then
  for dir in "$NODES_DIR"/llmops-real-*/; do [[ -d $dir ]] && nodes+=("$(basename "$dir")"); done
fi
[[ ${#nodes[@]} -gt 0 ]] || die "no real nodes under $NODES_DIR (make cluster-up)"
has_vllm() { grep -q "vllm-cpu" "$NODES_DIR/$1/images.imported" 2>/dev/null; }
importing() { [[ -f $TESTBED_STATE/pids/$1-vllm-import.pid ]] && kill -0 "$(cat "$TESTBED_STATE/pids/$1-vllm-import.pid")" 2>/dev/null; }
start=$SECONDS next=0
for node in "${nodes[@]}"; do
  # an import still running may be replacing an older vllm-cpu (the image changed): wait for it too
  until has_vllm "$node" && ! importing "$node"; do
    if ! importing "$node"; then
      has_vllm "$node" && break
      die "$node: the vllm-cpu import ended without the image: $(tail -5 "$NODES_DIR/$node-vllm-import.log" 2>/dev/null)"
    fi
    (( SECONDS - start < TIMEOUT )) || die "$node: vllm-cpu not imported after ${TIMEOUT}s (log: $NODES_DIR/$node-vllm-import.log)"
    if (( SECONDS >= next )); then
      log "$node: waiting for the vllm-cpu import ($((SECONDS - start)) s so far)"
      next=$((SECONDS + 30))
    fi
    sleep 2
  done
done
log "vllm-cpu is on ${nodes[*]} (waited $((SECONDS - start)) s)"
