# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""All-reduce sweep through PyTorch's NCCL backend, for hosts without nccl-tests.

nccl_check writes this file's source to a temporary file and runs it with the host's python
(the one that has torch): one process per GPU through multiprocessing's spawn, rendezvous on
loopback. Across nodes (the serving pre-flight: one pod per node, the same pods the engine will get)
every node runs it with --nodes, --node-rank and --master-addr: global rank = node rank x local GPUs
+ local index, rendezvous at the first node. --backend hccl --device npu runs it on Ascend NPUs through
torch_npu (HCCL, what vllm-ascend and SGLang on Ascend use). --backend gloo --device cpu runs the same collective on
CPUs (the test bed's stand-in, where no GPU exists): rendezvous, result collection and the gate run
for real, only the bandwidth means nothing.
Rank 0 prints rows in all_reduce_perf's layout so nccl_tests.parse_all_reduce_perf reads both tools.
Out-of-place rows are a device copy into a second buffer followed by an in-place all-reduce (torch
has no out-of-place all_reduce), so their time includes that copy.
--ops all_reduce,all_to_all adds an all-to-all sweep (all_to_all_single, alltoall_perf's layout: size is
what each rank sends in all, busbw = algbw x (n-1)/n); it has no in-place form, so those columns read N/A.
Each sweep starts with a "# nccl_torch_sweep op <name>" line (nccl_tests.split_sweeps).
torch is imported inside the functions: importing this module needs only the stdlib.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import socket
import sys


def _emit(line):
    # a row for nccl_tests.parse_all_reduce_perf on stdout (this runs as a script, not in a module)
    sys.stdout.write(line + "\n")


def script_source():
    """This file's source, also when it is imported from a zip (Ansible's module payload)."""
    loader = globals().get("__loader__")
    if loader is not None and hasattr(loader, "get_source"):
        source = loader.get_source(__name__)
        if source:
            # Ansible's collection loader (controller side, e.g. a filter) hands the source back as bytes
            return source.decode("utf-8") if isinstance(source, bytes) else source
    with open(__file__) as handle:
        return handle.read()


def _free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sizes(min_bytes, max_bytes, factor):
    size = min_bytes
    while size <= max_bytes:
        yield size
        size *= factor


def _time_us(torch, dist, fn, iters, warmup, device):
    import time

    accel = _accelerator(torch, device)
    for _iteration in range(warmup):
        fn()
    if accel is not None:
        accel.synchronize()
    dist.barrier()
    if accel is not None:
        start = accel.Event(enable_timing=True)
        end = accel.Event(enable_timing=True)
        start.record()
    began = time.perf_counter()
    for _iteration in range(iters):
        fn()
    if accel is not None:
        end.record()
        accel.synchronize()
        micros = start.elapsed_time(end) * 1000.0 / iters
    else:
        micros = (time.perf_counter() - began) * 1.0e6 / iters
    elapsed = torch.tensor([micros], device=device)
    # nccl-tests reports the mean time over ranks
    dist.all_reduce(elapsed)
    return elapsed.item() / dist.get_world_size()


def _wrong(torch, dist, buf, rank, world):
    buf.fill_(rank + 1)
    dist.all_reduce(buf)
    expected = world * (world + 1) / 2.0
    return int((buf != expected).sum().item())


def _format_side(time_us, algbw, busbw, wrong):
    return "  %7.2f  %6.2f  %6.2f  %6d" % (time_us, algbw, busbw, wrong)


OPS = ("all_reduce", "all_to_all")
# Each backend's device: NCCL on CUDA GPUs, HCCL on Ascend NPUs (torch_npu), gloo on CPUs (the stand-in).
BACKENDS = {"nccl": "cuda", "hccl": "npu", "gloo": "cpu"}


def _accelerator(torch, device):
    """torch.cuda or torch.npu (torch_npu registers it on import); None on the CPU."""
    if device == "npu":
        import torch_npu  # noqa: F401  (registers torch.npu)
    return getattr(torch, device) if device in ("cuda", "npu") else None


def _worker(local, world, port, args):
    import torch
    import torch.distributed as dist

    rank = args.node_rank * args.gpus + local
    device = args.device
    accel = _accelerator(torch, device)
    if accel is not None:
        accel.set_device(local)
    init = "tcp://%s:%d" % (args.master_addr, port)
    dist.init_process_group(args.backend, init_method=init, rank=rank, world_size=world)
    max_count = args.max_bytes // 4
    inp = torch.empty(max_count, dtype=torch.float32, device=device)
    out = torch.empty(max_count, dtype=torch.float32, device=device)
    for op in args.ops.split(","):
        _sweep(torch, dist, op, rank, world, inp, out, args)
    dist.destroy_process_group()


def _header(torch, op, world, args):
    _emit(
        "# nccl_torch_sweep op %s backend %s torch %s nGpus %d minBytes %d maxBytes %d step: %d(factor) "
        "warmup iters: %d iters: %d"
        % (
            op,
            args.backend,
            torch.__version__,
            world,
            args.min_bytes,
            args.max_bytes,
            args.factor,
            args.warmup,
            args.iters,
        )
    )
    _emit("#\n# Using devices")
    accel = _accelerator(torch, args.device)
    for index in range(args.gpus if accel is not None else 0):
        props = accel.get_device_properties(index)
        bus = "0x%02x" % getattr(props, "pci_bus_id", 0)
        _emit(
            "#  Rank %2d Group  0 Pid %6d on %10s device %2d [%s] %s"
            % (index, os.getpid(), socket.gethostname(), index, bus, props.name)
        )
    _emit(
        "#\n#       size         count      type   redop    root     time   algbw   busbw #wrong"
        "     time   algbw   busbw #wrong"
    )
    _emit(
        "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)"
    )
    sys.stdout.flush()


def _sweep(torch, dist, op, rank, world, inp, out, args):
    """One op over every size; rank 0 prints the table (nccl-tests' layout) and the average bus bandwidth."""
    if rank == 0:
        _header(torch, op, world, args)
    busbws = []
    for size in _sizes(args.min_bytes, args.max_bytes, args.factor):
        # all-to-all moves equal chunks to every rank: the count must divide by the world size
        count = max(size // 4, 1) if op == "all_reduce" else max(size // 4 // world, 1) * world
        size = count * 4
        a, b = inp[:count], out[:count]
        if op == "all_reduce":
            sides = []
            for fn, buf in ((_copy_then_all_reduce(dist, a, b, rank), b), (_all_reduce(dist, a, rank), a)):
                time_us = _time_us(torch, dist, fn, args.iters, args.warmup, args.device)
                algbw = size / 1.0e3 / time_us
                busbw = algbw * 2.0 * (world - 1) / world
                wrong = _wrong(torch, dist, buf, rank, world)
                sides.append(_format_side(time_us, algbw, busbw, wrong))
                busbws.append(busbw)
            line = "%12d  %12d  %8s  %6s  %6d%s%s" % (size, count, "float", "sum", -1, sides[0], sides[1])
        else:
            _fill_chunks(torch, a, rank, world)
            time_us = _time_us(
                torch, dist, lambda a=a, b=b: dist.all_to_all_single(b, a), args.iters, args.warmup, args.device
            )
            algbw = size / 1.0e3 / time_us
            busbw = algbw * (world - 1) / world
            wrong = _wrong_all_to_all(torch, b, rank, world)
            busbws.append(busbw)
            line = "%12d  %12d  %8s  %6s  %6d%s  %7s  %6s  %6s  %6s" % (
                size,
                count,
                "float",
                "none",
                -1,
                _format_side(time_us, algbw, busbw, wrong),
                "N/A",
                "N/A",
                "N/A",
                "N/A",
            )
        if rank == 0:
            _emit(line)
            sys.stdout.flush()
    if rank == 0:
        _emit("# Out of bounds values : 0 OK")
        _emit("# Avg bus bandwidth    : %g " % (sum(busbws) / len(busbws)))
        _emit("#")


def _copy_then_all_reduce(dist, a, b, rank):
    def run():
        b.copy_(a)
        dist.all_reduce(b)

    a.fill_(rank + 1)
    return run


def _all_reduce(dist, a, rank):
    return lambda: dist.all_reduce(a)


def _fill_chunks(torch, buf, rank, world):
    # chunk j of rank r holds r * world + j: after the exchange, chunk j on rank r must hold j * world + r
    chunk = buf.numel() // world
    for j in range(world):
        buf[j * chunk : (j + 1) * chunk].fill_(rank * world + j)


def _wrong_all_to_all(torch, buf, rank, world):
    chunk = buf.numel() // world
    expected = torch.arange(world, device=buf.device, dtype=buf.dtype) * world + rank
    return int((buf.view(world, chunk) != expected.view(world, 1)).sum().item())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpus", type=int, required=True, help="processes (GPUs) on this node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--node-rank", type=int, default=0)
    parser.add_argument("--master-addr", default="127.0.0.1", help="address of node rank 0")
    parser.add_argument("--master-port", type=int, default=0, help="0: a free loopback port (one node only)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="nccl")
    parser.add_argument("--device", choices=sorted(set(BACKENDS.values())), default="cuda")
    parser.add_argument("--min-bytes", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=1 << 30)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--ops", default="all_reduce", help="comma-separated: %s" % ", ".join(OPS))
    args = parser.parse_args(argv)
    if not args.ops or any(op not in OPS for op in args.ops.split(",")):
        parser.error("--ops takes a comma-separated list of %s" % ", ".join(OPS))
    world = args.gpus * args.nodes
    if world < 2 or args.gpus < 1 or args.factor < 2 or args.min_bytes < 1 or args.max_bytes < args.min_bytes:
        parser.error("need >= 2 ranks in all, --factor >= 2 and 1 <= --min-bytes <= --max-bytes")
    if not 0 <= args.node_rank < args.nodes:
        parser.error("--node-rank must be in [0, --nodes)")
    if args.nodes > 1 and not args.master_port:
        parser.error("--master-port is needed across nodes (every node must use the same one)")
    if BACKENDS[args.backend] != args.device:
        parser.error(
            "--backend %s needs --device %s (nccl/cuda, hccl/npu; gloo/cpu without accelerators)"
            % (args.backend, BACKENDS[args.backend])
        )
    port = args.master_port or _free_loopback_port()

    import torch.multiprocessing as mp

    mp.start_processes(_worker, args=(world, port, args), nprocs=args.gpus, start_method="spawn", join=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
