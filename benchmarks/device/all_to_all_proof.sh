#!/usr/bin/env bash
# Proof of the pre-flight's all-to-all (nccl_torch_sweep.py --ops all_reduce,all_to_all) on a real 2-GPU host,
# read back by the serve stage's own judge (nccl_preflight.judge_logs):
#  1. one node, 2 GPUs, NVLink;  2. the same with NCCL_P2P_DISABLE=1 (SHM);
#  3. two "nodes" of one GPU each (node ranks 0/1, rendezvous at --master-addr), as two pods run it;
#  4. the same two nodes with --backend gloo --device cpu (the test bed's CPU stand-in).
# Logs go to $OUT/a2a-<case>[-rank1].txt; the table at the end is what docs/node_health.md quotes.
#   LLMOPS_PYTHONPATH=<folder with the ansible package> benchmarks/device/all_to_all_proof.sh
set -uo pipefail
OUT=${OUT:-$PWD/proof-out}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SWEEP=$ROOT/plugins/module_utils/nccl_torch_sweep.py
export NCCL_DEBUG=INFO NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
ARGS=(--min-bytes 1048576 --max-bytes 1073741824 --iters 10 --warmup 3 --ops "all_reduce,all_to_all")
python3 "$SWEEP" --gpus 2 "${ARGS[@]}" > "$OUT/a2a-nvlink.txt" 2>&1
echo "nvlink rc=$?"
NCCL_P2P_DISABLE=1 python3 "$SWEEP" --gpus 2 "${ARGS[@]}" > "$OUT/a2a-shm.txt" 2>&1
echo "shm rc=$?"
for backend in nccl gloo; do
  device=cuda max=()
  [ $backend = gloo ] && device=cpu max=(--max-bytes 67108864)
  CUDA_VISIBLE_DEVICES=1 python3 "$SWEEP" --gpus 1 --nodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port 29612 \
      --backend $backend --device $device "${ARGS[@]}" "${max[@]}" > "$OUT/a2a-2node-$backend-rank1.txt" 2>&1 &
  worker=$!
  CUDA_VISIBLE_DEVICES=0 python3 "$SWEEP" --gpus 1 --nodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port 29612 \
      --backend $backend --device $device "${ARGS[@]}" "${max[@]}" > "$OUT/a2a-2node-$backend.txt" 2>&1
  leader_rc=$?
  wait "$worker"
  echo "2node $backend rc=$leader_rc worker rc=$?"
done
COLL=$(mktemp -d)
mkdir -p "$COLL/ansible_collections/llmops" && ln -sfn "$ROOT" "$COLL/ansible_collections/llmops/inference"
PYTHONPATH=${LLMOPS_PYTHONPATH:+$LLMOPS_PYTHONPATH:}$COLL python3 - "$OUT" <<'PY'
import os, sys
from ansible_collections.llmops.inference.plugins.module_utils import nccl_preflight
out = sys.argv[1]
print("| case | all-reduce peak busbw GB/s | all-to-all peak busbw GB/s | channels | passed | reasons |")
print("| --- | --- | --- | --- | --- | --- |")
for case, expected, backend in (("nvlink", "nvlink", "nccl"), ("shm", "nvlink", "nccl"),
                                ("2node-nccl", "", "nccl"), ("2node-gloo", "", "gloo")):
    logs = {"rank0": open(os.path.join(out, "a2a-%s.txt" % case)).read()}
    if os.path.exists(os.path.join(out, "a2a-%s-rank1.txt" % case)):
        logs["rank1"] = open(os.path.join(out, "a2a-%s-rank1.txt" % case)).read()
    settings = {"expected_transport": expected, "backend": backend, "device": "cpu" if backend == "gloo" else "cuda",
                "collectives": ["all_reduce", "all_to_all"]}
    try:
        result = nccl_preflight.judge_logs(logs, settings)
    except Exception as exc:
        print("| %s | - | - | - | - | %s |" % (case, str(exc)[:200])); continue
    summary = result["transports"].get("summary") or {}
    print("| %s | %s | %s | %s | %s | %s |" % (case, result["peaks"].get("all_reduce"), result["peaks"].get("all_to_all"),
          ", ".join("%s=%d" % kv for kv in sorted(summary.items())) or "-", result["passed"],
          "; ".join(result["reasons"])[:220]))
PY
