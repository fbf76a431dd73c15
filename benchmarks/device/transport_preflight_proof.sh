#!/usr/bin/env bash
# Proof on a real 2-GPU host: nccl_check's torch sweep judged by transport (nvlink expected) in three
# settings: default (passes), NCCL_P2P_DISABLE=1 (SHM: fails, names SHM), P2P+SHM+IB off (fails, names
# NET/Socket). Needs ansible-core importable (LLMOPS_PYTHONPATH) and a python3 with torch.
#   benchmarks/device/transport_preflight_proof.sh
set -uo pipefail
OUT=${OUT:-$PWD/proof-out}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COLL=$(mktemp -d)
mkdir -p "$COLL/ansible_collections/llmops"
ln -s "$ROOT" "$COLL/ansible_collections/llmops/inference"
export PYTHONPATH=${LLMOPS_PYTHONPATH:+$LLMOPS_PYTHONPATH:}$COLL PYTHONUNBUFFERED=1
run_case() {  # run_case <name> <nccl_env json>
    local args
    args=$(mktemp)
    printf '{"ANSIBLE_MODULE_ARGS": {"tool": "torch", "max_bytes": "1G", "min_bytes": "64M", "iters": 10, "warmup_iters": 3, "expected_busbw_gbps": 1.0, "expected_transport": "nvlink", "nccl_env": %s}}\n' "$2" > "$args"
    python3 "$ROOT/plugins/modules/nccl_check.py" "$args" > "$OUT/transport-$1.json" 2> "$OUT/transport-$1.stderr"
}
run_case nvlink '{}'
run_case shm '{"NCCL_P2P_DISABLE": "1"}'
run_case socket '{"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1", "NCCL_IB_DISABLE": "1"}'
python3 - "$OUT" <<'PY'
import json, sys, os
print("| case | peak busbw GB/s | channels (kind=count) | passed | reason |")
print("| --- | --- | --- | --- | --- |")
for case in ("nvlink", "shm", "socket"):
    try:
        r = json.load(open(os.path.join(sys.argv[1], "transport-%s.json" % case)))
    except Exception as exc:
        print("| %s | - | - | - | no JSON: %s |" % (case, exc)); continue
    summary = ", ".join("%s=%d" % kv for kv in sorted((r.get("transports") or {}).get("summary", {}).items()))
    print("| %s | %s | %s | %s | %s |" % (case, r.get("peak_busbw_gbps"), summary, r.get("passed"), "; ".join(r.get("reasons") or [])[:200]))
PY
