#!/usr/bin/env bash
# The prepare stage for real on a GPU host: `ansible-playbook playbooks/prepare_nodes.yml` with the
# host itself as the only gpu_nodes member (connection local), role gpu_node_checks running gpu_facts,
# rdma_check and nccl_check (nccl-tests) with the pods' NCCL env; then the same with a real fault
# (NCCL_P2P_DISABLE=1 through gpu_node_checks_nccl_env_overrides), which must fail the play.
#
#   benchmarks/device/prepare_stage_proof.sh <nccl-tests build dir>
#
# Needs ansible-core importable by python3 (PYTHONPATH) and >= 2 GPUs. Logs go to $OUT.
set -uo pipefail
BUILD_DIR=$(cd "${1:?usage: $0 <nccl-tests build dir>}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$PWD/proof-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1

COLL=$(mktemp -d)
mkdir -p "$COLL/ansible_collections/llmops"
ln -s "$ROOT" "$COLL/ansible_collections/llmops/inference"
export ANSIBLE_COLLECTIONS_PATH=$COLL ANSIBLE_CONFIG=$ROOT/ansible.cfg ANSIBLE_NOCOLOR=1
NGPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | grep -c .)
INVENTORY=$OUT/inventory.yml
cat > "$INVENTORY" <<YAML
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: $(command -v python3)
  children:
    gpu_nodes:
      hosts:
        gpu-host:
          gpu_node_checks_expected_gpu_count: $NGPUS
          gpu_node_checks_nccl_check: true
          gpu_node_checks_all_reduce_perf_path: $BUILD_DIR/all_reduce_perf
    k8s_control:
      hosts:
        localhost:
    npu_nodes:
      hosts: {}
YAML

run() {  # run <name> <ansible-playbook args...>
    local name=$1 started rc
    shift
    started=$SECONDS
    ansible-playbook -i "$INVENTORY" "$ROOT/playbooks/prepare_nodes.yml" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    printf '%-22s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - started))" >> "$OUT/summary.txt"
}

run healthy
run p2p_disabled -e '{"gpu_node_checks_nccl_env_overrides": {"NCCL_P2P_DISABLE": "1"}}'
run healthy_again_check --check

for name in healthy p2p_disabled healthy_again_check; do
    echo "=================== $name"
    grep -E '^(TASK|ok:|changed:|fatal:|failed:|skipping:)|msg|peak|busbw|reasons|RECAP|gpu-host|localhost' "$OUT/$name.log" | cut -c1-400 | tail -45
done
echo "=================== summary"
cat "$OUT/summary.txt"
