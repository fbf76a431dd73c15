#!/usr/bin/env bash
# Proof of the serving pre-flight's sweep (plugins/module_utils/nccl_torch_sweep.py) on a real 2-GPU host:
#  1. single node, 2 GPUs (nccl_check's path, unchanged);
#  2. two "nodes" of one GPU each (node ranks 0 and 1, rendezvous at --master-addr), as two pods would run it;
#  3. the same two nodes with --backend gloo --device cpu (the test bed's CPU stand-in).
# Rank 0's output of each goes to $OUT/sweep-<case>.txt; the table at the end is read back by our own parser.
set -uo pipefail
OUT=${OUT:-$PWD/proof-out}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SWEEP=$ROOT/plugins/module_utils/nccl_torch_sweep.py
export NCCL_DEBUG=INFO NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
ARGS=(--min-bytes 1048576 --max-bytes 268435456 --iters 5 --warmup 2)
python3 "$SWEEP" --gpus 2 "${ARGS[@]}" > "$OUT/sweep-single.txt" 2>&1
echo "single rc=$?"
for backend in nccl gloo; do
  device=cuda; [ $backend = gloo ] && device=cpu
  CUDA_VISIBLE_DEVICES=1 python3 "$SWEEP" --gpus 1 --nodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port 29611 \
      --backend $backend --device $device "${ARGS[@]}" > "$OUT/sweep-2node-$backend-rank1.txt" 2>&1 &
  worker=$!
  CUDA_VISIBLE_DEVICES=0 python3 "$SWEEP" --gpus 1 --nodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port 29611 \
      --backend $backend --device $device "${ARGS[@]}" > "$OUT/sweep-2node-$backend.txt" 2>&1
  leader_rc=$?
  wait "$worker"
  echo "2node $backend rc=$leader_rc worker rc=$?"
done
mkdir -p /tmp/coll/ansible_collections/llmops && ln -sfn "$ROOT" /tmp/coll/ansible_collections/llmops/inference
PYTHONPATH=${LLMOPS_PYTHONPATH:+$LLMOPS_PYTHONPATH:}/tmp/coll python3 - "$OUT" <<'PY'
import sys, os
from ansible_collections.llmops.inference.plugins.module_utils import nccl_tests
print("| case | rows | peak busbw GB/s (>= 64 MiB) | transports | wrong |")
print("| --- | --- | --- | --- | --- |")
for case in ("single", "2node-nccl", "2node-gloo"):
    text = open(os.path.join(sys.argv[1], "sweep-%s.txt" % case)).read()
    try:
        parsed = nccl_tests.parse_all_reduce_perf(text)
    except Exception as exc:
        print("| %s | - | - | - | %s |" % (case, str(exc)[:150])); continue
    debug = nccl_tests.parse_nccl_debug(text)
    wrong = sum((r["in_place"]["wrong"] or 0) + (r["out_of_place"]["wrong"] or 0) for r in parsed["rows"])
    print("| %s | %d | %.2f | %s | %d |" % (case, len(parsed["rows"]), nccl_tests.peak_busbw(parsed, 64 << 20),
          ",".join(debug["transports"]) or "-", wrong))
PY
