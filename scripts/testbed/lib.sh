# Shared settings for scripts/testbed/*.sh (sourced, not executed).
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# shellcheck shell=bash
TESTBED_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../../testbed/versions.env
source "$TESTBED_REPO_ROOT/testbed/versions.env"
TESTBED_GO_DIR="$TESTBED_REPO_ROOT/testbed/go"
TESTBED_CACHE="${LLMOPS_CACHE_DIR:-$HOME/.cache/llmops-inference}/testbed"
TESTBED_STATE="${TESTBED_STATE_DIR:-$TESTBED_REPO_ROOT/.state/testbed}"
TESTBED_KUBECONFIG="$TESTBED_STATE/kubeconfig"
TESTBED_CLUSTER_NAME="${TESTBED_CLUSTER_NAME:-llmops}"
# Every Go module of ours lives in testbed/go/<name>; its binaries land in
# $TESTBED_CACHE/<name>-<key>/ where <key> hashes everything that decides the output.
TESTBED_MODULES=(kubernetes kwok helm lws)
# Built only on request (scripts/testbed/build.sh volcano, or TESTBED_VOLCANO=1 for cluster-up; epp by
# scripts/testbed/epp-up.sh for the routing test, keda by scripts/testbed/keda-up.sh for the autoscaling loop test).
TESTBED_OPTIONAL_MODULES=(volcano epp keda)
# The real nodes' parts (scripts/testbed/nodes-up.sh): cluster DNS and our own node binaries; the S3
# server and client of the model source (scripts/testbed/s3-up.sh).
TESTBED_NODE_MODULES=(coredns node minio)

# import_image NODE_DIR ARCHIVE: an image archive into a real node's containerd, once (the archive's name carries
# its content key; the node's images.imported lists what is in)
import_image() {
  grep -qxF "$2" "$1/images.imported" 2>/dev/null && return 0
  ctr --address "$1/containerd/containerd.sock" -n k8s.io images import "$2" >/dev/null \
    || die "importing $2 into $(basename "$1") failed"
  echo "$2" >> "$1/images.imported"
}

log() { printf '>>> [testbed %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR [testbed]: %s\n' "$*" >&2; exit 1; }

# The address a server of the bed listens on: the host side of the real nodes' bridge (10.213.0.1, which pods on
# llmops-real-* reach; it exists while real nodes run, nodes-up.sh) or 127.0.0.1 when no real node runs.
testbed_host() {
  if ip -4 addr show dev llmtb0 2>/dev/null | grep -q 'inet 10\.213\.0\.1/'; then echo 10.213.0.1; else echo 127.0.0.1; fi
}

# The test model folder every model source of the bed serves (s3-up.sh, hf-up.sh): TESTBED_MODEL_DIR when set,
# else the tiny real Qwen2 that make_model.py writes once into .state/testbed/s3/model-src/tiny-qwen2 (the
# real-node inventories' planner reads its config.json there). Prints the folder.
testbed_model_dir() {
  local dir="${TESTBED_MODEL_DIR:-$TESTBED_STATE/s3/model-src/tiny-qwen2}"
  if [[ -z ${TESTBED_MODEL_DIR:-} && ! -f $dir/config.json ]]; then
    rm -rf "$dir.tmp" && python3 "$TESTBED_REPO_ROOT/scripts/testbed/make_model.py" "$dir.tmp" >&2 && mv "$dir.tmp" "$dir"
  fi
  [[ -f $dir/config.json ]] || die "the model folder $dir has no config.json"
  printf '%s\n' "$dir"
}

# Where build.sh links the binaries of the current pins (per checkout, so worktrees with other pins do not clash).
TESTBED_BIN="$TESTBED_REPO_ROOT/.build/testbed/bin"

# kubectl wait --for=condition=Established <crd args>; a CRD that apply has just created or touched
# can briefly have no conditions at all, which kubectl wait reports as an error, so retry.
wait_established() {
  local attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    kubectl wait --for=condition=Established "$@" --timeout=120s >/dev/null 2>&1 && return 0
    sleep 1
  done
  kubectl wait --for=condition=Established "$@" --timeout=1s
}
