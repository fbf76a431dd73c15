# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measure what a serving process holds on a GPU before it loads weights (the planner's runtime reserve).

SGLang sizes its KV pool as (free memory after loading) - (free memory after distributed init) x
(1 - mem_fraction_static) (ModelRunner.profile_max_num_token), so everything held before the weights
(the memory the driver keeps from CUDA, the CUDA context, NCCL communicators) scales the pool down
by that amount x the fraction. This script records, per rank:

* nvidia-smi's memory.total (what the accelerator catalog lists) and torch's total (cudaMemGetInfo);
* free memory after the CUDA context is created;
* free memory after torch.distributed (NCCL) is initialised and one all-reduce ran.

Run with ``torchrun --nproc_per_node N benchmarks/device/runtime_footprint.py OUT.json``. Measured on the device
machine (2 x H200, torch 2.11.0+cu130, NCCL 2.28.9): nvidia-smi 140.40 GiB, CUDA total 139.80 GiB, free after the
context 139.19 GiB, free after NCCL on 2 ranks 138.35 GiB (the constants in plugins/module_utils/parallelism.py).
"""

import json
import os
import subprocess
import sys

import torch
import torch.distributed as dist

GIB = float(1 << 30)


def smi_total_mib(index):
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.total,name", "--format=csv,noheader,nounits", "-i", str(index)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    total, name = [part.strip() for part in out.split(",", 1)]
    return int(total), name


def main():
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.cuda.set_device(rank)
    torch.zeros(1, device="cuda")  # create the context
    free_ctx, total = torch.cuda.mem_get_info()
    smi_mib, name = smi_total_mib(rank)
    record = {
        "rank": rank,
        "world": world,
        "gpu": name,
        "nvidia_smi_total_gib": smi_mib / 1024.0,
        "cuda_total_gib": total / GIB,
        "free_after_context_gib": free_ctx / GIB,
        "torch_version": torch.__version__,
        "nccl_version": ".".join(str(v) for v in torch.cuda.nccl.version()),
    }
    if world > 1:
        dist.init_process_group("nccl", device_id=torch.device("cuda", rank))
        tensor = torch.ones(1 << 20, device="cuda")
        dist.all_reduce(tensor)
        torch.cuda.synchronize()
        record["free_after_nccl_gib"] = torch.cuda.mem_get_info()[0] / GIB
    record["held_before_weights_vs_smi_gib"] = record["nvidia_smi_total_gib"] - record.get(
        "free_after_nccl_gib", record["free_after_context_gib"]
    )
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    if len(sys.argv) > 1:
        with open("%s.rank%d" % (sys.argv[1], rank), "w") as handle:
            handle.write(line + "\n")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
