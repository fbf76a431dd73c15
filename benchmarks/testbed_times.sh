#!/usr/bin/env bash
# Times of the Kubernetes test bed, printed as a table:
#   cold build   scripts/testbed/build.sh with empty Go module, Go build and binary caches
#                (what a fresh CI machine pays once per pin change); BENCH_COLD=0 skips it
#                (all modules: the control plane, kubelet, kube-proxy, kwok, helm, lws, CoreDNS, ours)
#   image cold   scripts/testbed/image_build.py pause python with empty image and .deb caches
#   image cached the same with the caches filled (target <= 10 s)
#   warm start   cluster-up.sh from cached binaries with no cluster running, real nodes included
#   reuse        cluster-up.sh again while the cluster is up
#   molecule     molecule test -s testbed on the running cluster
# Leaves the cluster as it found it (running or not).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/testbed/lib.sh
MOLECULE="${MOLECULE:-$ROOT/.venv/bin/molecule}"
[[ -x $MOLECULE ]] || MOLECULE="$(command -v molecule || true)"
declare -a rows=()

timed() {  # timed <label> <note> <command...>: run, record wall seconds
  local label=$1 note=$2 start end; shift 2
  start=$EPOCHREALTIME
  "$@" > "$LOGDIR/${label// /_}.log" 2>&1 || { echo "FAILED: $label (log: $LOGDIR/${label// /_}.log)" >&2; tail -20 "$LOGDIR/${label// /_}.log" >&2; exit 1; }
  end=$EPOCHREALTIME
  rows+=("$(printf '| %-12s | %8.1f | %s |' "$label" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "$note")")
}

LOGDIR="$(mktemp -d /tmp/testbed-bench.XXXXXX)"
was_up=0
KUBECONFIG="$TESTBED_KUBECONFIG" "$TESTBED_BIN/kubectl" get --raw /readyz >/dev/null 2>&1 && was_up=1

if [[ ${BENCH_COLD:-1} == 1 ]]; then
  cold="$(mktemp -d /tmp/testbed-cold.XXXXXX)"
  timed "cold build" "empty GOMODCACHE+GOCACHE+binary cache, $(nproc) cores, $(go env GOVERSION)" \
    env LLMOPS_CACHE_DIR="$cold/cache" GOCACHE="$cold/gocache" GOMODCACHE="$cold/gomod" \
    bash scripts/testbed/build.sh "${TESTBED_MODULES[@]}" "${TESTBED_NODE_MODULES[@]}"
  chmod -R u+w "$cold" && rm -rf "$cold"
fi
bash scripts/testbed/build.sh "${TESTBED_MODULES[@]}" "${TESTBED_NODE_MODULES[@]}" >/dev/null 2>&1  # fill the normal cache
images="$(mktemp -d /tmp/testbed-images.XXXXXX)"
timed "image cold" "pause + python images, empty image and .deb caches" \
  env LLMOPS_CACHE_DIR="$images" python3 scripts/testbed/image_build.py pause python
rm -rf "$images"
python3 scripts/testbed/image_build.py pause python >/dev/null
timed "image cached" "pause + python images again (target <= 10 s)" python3 scripts/testbed/image_build.py pause python
bash scripts/testbed/cluster-down.sh >/dev/null 2>&1
timed "warm start" "cluster-up.sh, cached binaries, no cluster running, ${TESTBED_REAL_NODES:-2} real nodes (target <= 45 s)" bash scripts/testbed/cluster-up.sh
timed "reuse" "cluster-up.sh while the cluster is up" bash scripts/testbed/cluster-up.sh
if [[ -n $MOLECULE ]]; then
  timed "molecule" "molecule test -s testbed on the running cluster" "$MOLECULE" test -s testbed
fi
[[ $was_up == 1 ]] || bash scripts/testbed/cluster-down.sh >/dev/null 2>&1

printf '\nKubernetes test bed times (logs: %s)\n\n' "$LOGDIR"
printf '| %-12s | %8s | %s |\n|--------------|----------|------|\n' step seconds notes
printf '%s\n' "${rows[@]}"
