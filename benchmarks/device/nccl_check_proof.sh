#!/usr/bin/env bash
# Proof on a real multi-GPU host: nccl_check against nccl-tests' own all_reduce_perf, a real fault
# (NCCL_P2P_DISABLE=1 forces traffic off NVLink), gpu_facts and rdma_check, all in one session.
#
#   benchmarks/device/nccl_check_proof.sh <nccl-tests build dir>
#
# Needs: nvidia-smi, >= 2 GPUs, a python3 with torch (the fallback sweep) and ansible-core's
# module_utils importable (set LLMOPS_PYTHONPATH to a folder holding the `ansible` package when
# the host python has no ansible-core). Logs go to $OUT (default ./proof-out); the last thing
# printed is the table docs/node_health.md quotes.
set -uo pipefail

BUILD_DIR=${1:?usage: $0 <nccl-tests build dir holding all_reduce_perf>}
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
OUT=${OUT:-$PWD/proof-out}
LOGS=$OUT/logs
mkdir -p "$LOGS"
COLLECTION_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}

# NVLink multicast stays off on shared hosts (device README); nccl_check also defaults it off.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1

COLL=$(mktemp -d)
mkdir -p "$COLL/ansible_collections/llmops"
ln -s "$COLLECTION_ROOT" "$COLL/ansible_collections/llmops/inference"
export PYTHONPATH=${LLMOPS_PYTHONPATH:+$LLMOPS_PYTHONPATH:}$COLL

run_module() {  # run_module <name> <json args> <output file>: the module's own entry point, args file as Ansible passes it
    local name=$1 args=$2 out=$3 argsfile
    argsfile=$(mktemp)
    printf '{"ANSIBLE_MODULE_ARGS": %s}\n' "$args" > "$argsfile"
    "$PY" "$COLLECTION_ROOT/plugins/modules/$name.py" "$argsfile" > "$out" 2> "$out.stderr"
    echo "$name rc=$?" >> "$LOGS/rc.txt"
}

echo "== nvidia-smi"
nvidia-smi > "$LOGS/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,memory.total,driver_version,mig.mode.current,persistence_mode,ecc.mode.current,ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total \
    --format=csv,noheader,nounits > "$LOGS/nvidia-smi-query-gpu.csv" 2>&1
nvidia-smi topo -m > "$LOGS/nvidia-smi-topo-m.txt" 2>&1
nvidia-smi nvlink -s > "$LOGS/nvidia-smi-nvlink-s.txt" 2>&1
nvidia-smi -q > "$LOGS/nvidia-smi-q.txt" 2>&1
cat "$LOGS/nvidia-smi-query-gpu.csv" "$LOGS/nvidia-smi-topo-m.txt"
NGPUS=$(grep -c . "$LOGS/nvidia-smi-query-gpu.csv")

echo "== all_reduce_perf directly"
SECONDS=0
NCCL_DEBUG=INFO "$BUILD_DIR/all_reduce_perf" -b 8 -e 4G -f 2 -g "$NGPUS" > "$LOGS/all_reduce_perf_direct.txt" 2>&1
echo "direct rc=$? seconds=$SECONDS" >> "$LOGS/rc.txt"
grep -v "NCCL INFO" "$LOGS/all_reduce_perf_direct.txt" | tail -40

echo "== nccl_check (nccl-tests)"
run_module nccl_check "{\"all_reduce_perf_path\": \"$BUILD_DIR/all_reduce_perf\", \"tool\": \"nccl-tests\"}" "$LOGS/nccl_check_nccltests.json"
echo "== nccl_check (torch fallback)"
run_module nccl_check '{"tool": "torch"}' "$LOGS/nccl_check_torch.json"
echo "== nccl_check with NCCL_P2P_DISABLE=1 (expected to fail)"
run_module nccl_check "{\"all_reduce_perf_path\": \"$BUILD_DIR/all_reduce_perf\", \"tool\": \"nccl-tests\", \"nccl_env\": {\"NCCL_P2P_DISABLE\": \"1\"}}" "$LOGS/nccl_check_p2p_disabled.json"
echo "== gpu_facts"
run_module gpu_facts "{\"expected_gpu_count\": $NGPUS}" "$LOGS/gpu_facts.json"
echo "== rdma_check"
run_module rdma_check '{}' "$LOGS/rdma_check.json"
cat "$LOGS/rc.txt"

# The table: direct peak read with awk (independent of our parser), ours from the module's JSON.
DIRECT=$(awk '!/^#/ && $1 ~ /^[0-9]+$/ && $1 >= 1073741824 && NF >= 13 {if ($8>m) m=$8; if ($12>m) m=$12} END {print m+0}' \
    "$LOGS/all_reduce_perf_direct.txt")
"$PY" - "$LOGS" "$DIRECT" <<'PYEOF' | tee "$OUT/summary.md"
import json, sys, os
logs, direct = sys.argv[1], float(sys.argv[2])
def load(name):
    try:
        with open(os.path.join(logs, name)) as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        return {"failed": True, "msg": "no JSON: %s" % exc}
print("| run | tool | peak busbw GB/s (>= 1 GiB) | vs direct | expected GB/s | passed | reasons / msg |")
print("| --- | --- | --- | --- | --- | --- | --- |")
print("| all_reduce_perf direct | nccl-tests | %.2f | - | - | - | - |" % direct)
for label, name in (("nccl_check", "nccl_check_nccltests.json"), ("nccl_check torch fallback", "nccl_check_torch.json"),
                    ("nccl_check NCCL_P2P_DISABLE=1", "nccl_check_p2p_disabled.json")):
    r = load(name)
    peak = r.get("peak_busbw_gbps")
    diff = "%+.2f%%" % (100.0 * (peak - direct) / direct) if peak and direct else "-"
    why = "; ".join(r.get("reasons") or []) or r.get("msg", "")
    print("| %s | %s | %s | %s | %s | %s | %s (transports %s) |" % (
        label, r.get("tool"), peak, diff, r.get("expected_busbw_gbps"), r.get("passed"), why,
        ",".join((r.get("nccl") or {}).get("transports") or [])))
g = load("gpu_facts.json")
print("\ngpu_facts: failed=%s count=%s model=%s driver=%s cuda=%s link_type=%s problems=%s" % (
    g.get("failed", False), g.get("gpu_count"), g.get("gpu_model"), g.get("driver_version"), g.get("cuda_version"),
    g.get("link_type"), g.get("problems")))
d = load("rdma_check.json")
print("rdma_check: failed=%s rdma_present=%s msg=%s nccl_env=%s" % (d.get("failed", False), d.get("rdma_present"),
      d.get("msg"), d.get("nccl_env")))
PYEOF
tar -czf "$OUT/proof-logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
rm -rf "$COLL"
