"""Record real NCCL_DEBUG=INFO logs of a 2-rank all-reduce under three transport settings.

Run on a host with >= 2 GPUs (the lent H200 machine):
    python3 benchmarks/device/record_nccl_transport_logs.py OUTDIR

Each case starts a fresh pair of processes (NCCL reads its environment once per process):
  nvlink  default settings: intra-node channels over P2P (NVLink)
  shm     NCCL_P2P_DISABLE=1: the same traffic through host shared memory
  socket  NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_IB_DISABLE=1: NET/Socket over loopback TCP,
          the silent fallback a misconfigured IB/RoCE fabric gives
For each case the log of every rank goes to OUTDIR/nccl-<case>.log (both ranks interleaved, as a pod log
collector or `kubectl logs` of each pod concatenated would give) and the measured bus bandwidth of a
1 GiB all-reduce to OUTDIR/summary.json; these logs are the fixtures of tests/unit (transport parser).
"""

import json
import os
import subprocess
import sys
import time

CASES = {
    "nvlink": {},
    "shm": {"NCCL_P2P_DISABLE": "1"},
    "socket": {"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1", "NCCL_IB_DISABLE": "1"},
}

WORKER = r"""
import os, sys, time, json
import torch, torch.distributed as dist
rank = int(os.environ["RANK"]); world = int(os.environ["WORLD_SIZE"])
torch.cuda.set_device(rank)
dist.init_process_group("nccl", rank=rank, world_size=world, device_id=torch.device("cuda", rank))
size = 1 << 30
x = torch.ones(size // 4, dtype=torch.float32, device="cuda")
for _ in range(3):
    dist.all_reduce(x)
torch.cuda.synchronize()
iters = 10
start = time.perf_counter()
for _ in range(iters):
    dist.all_reduce(x)
torch.cuda.synchronize()
elapsed = (time.perf_counter() - start) / iters
busbw = size / elapsed * 2 * (world - 1) / world / 1e9
if rank == 0:
    print("LLMOPS_RESULT " + json.dumps({"bytes": size, "seconds": elapsed, "busbw_gbps": round(busbw, 2)}), flush=True)
dist.destroy_process_group()
"""


def run_case(name, extra, outdir, world=2):
    env_base = dict(os.environ)
    env_base.update(
        {
            "NCCL_DEBUG": "INFO",
            "NCCL_NVLS_ENABLE": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(29500 + len(name)),
            "WORLD_SIZE": str(world),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env_base.update(extra)
    log_path = os.path.join(outdir, "nccl-%s.log" % name)
    procs = []
    with open(log_path, "w") as log:
        log.write("# case=%s env=%s\n" % (name, json.dumps(extra, sort_keys=True)))
        log.flush()
        for rank in range(world):
            env = dict(env_base, RANK=str(rank), LOCAL_RANK=str(rank))
            procs.append(
                subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        codes = [p.wait(timeout=300) for p in procs]
    result = {"case": name, "env": extra, "returncodes": codes}
    with open(log_path) as log:
        for line in log:
            if line.startswith("LLMOPS_RESULT "):
                result.update(json.loads(line.split(" ", 1)[1]))
    return result


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "nccl-logs"
    os.makedirs(outdir, exist_ok=True)
    results = []
    for name, extra in CASES.items():
        t0 = time.time()
        res = run_case(name, extra, outdir)
        res["wall_s"] = round(time.time() - t0, 1)
        print(json.dumps(res), flush=True)
        results.append(res)
    with open(os.path.join(outdir, "summary.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    print("| case | env | busbw GB/s (1 GiB all-reduce) | rc |")
    print("| --- | --- | --- | --- |")
    for res in results:
        print(
            "| %s | %s | %s | %s |"
            % (
                res["case"],
                " ".join("%s=%s" % kv for kv in res["env"].items()) or "-",
                res.get("busbw_gbps"),
                res["returncodes"],
            )
        )


if __name__ == "__main__":
    main()
