# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""All-reduce sweep through PyTorch's NCCL backend, for hosts without nccl-tests.

nccl_check writes this file's source to a temporary file and runs it with the host's python
(the one that has torch): one process per GPU through multiprocessing's spawn, rendezvous on
loopback. Across nodes (the serving pre-flight: one pod per node, the same pods the engine will get)
every node runs it with --nodes, --node-rank and --master-addr: global rank = node rank x local GPUs
+ local index, rendezvous at the first node. --backend gloo --device cpu runs the same collective on
CPUs (the test bed's stand-in, where no GPU exists): rendezvous, result collection and the gate run
for real, only the bandwidth means nothing.
Rank 0 prints rows in all_reduce_perf's layout so nccl_tests.parse_all_reduce_perf reads both tools.
Out-of-place rows are a device copy into a second buffer followed by an in-place all-reduce (torch
has no out-of-place all_reduce), so their time includes that copy.
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

    cuda = device == "cuda"
    for _iteration in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    dist.barrier()
    if cuda:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
    began = time.perf_counter()
    for _iteration in range(iters):
        fn()
    if cuda:
        end.record()
        torch.cuda.synchronize()
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


def _worker(local, world, port, args):
    import torch
    import torch.distributed as dist

    rank = args.node_rank * args.gpus + local
    device = args.device
    if device == "cuda":
        torch.cuda.set_device(local)
    init = "tcp://%s:%d" % (args.master_addr, port)
    dist.init_process_group(args.backend, init_method=init, rank=rank, world_size=world)
    max_count = args.max_bytes // 4
    inp = torch.empty(max_count, dtype=torch.float32, device=device)
    out = torch.empty(max_count, dtype=torch.float32, device=device)
    factor = 2.0 * (world - 1) / world
    busbws = []
    if rank == 0:
        _emit(
            "# nccl_torch_sweep torch %s nGpus %d minBytes %d maxBytes %d step: %d(factor) warmup iters: %d iters: %d"
            % (torch.__version__, world, args.min_bytes, args.max_bytes, args.factor, args.warmup, args.iters)
        )
        _emit("#\n# Using devices")
        for index in range(args.gpus if device == "cuda" else 0):
            props = torch.cuda.get_device_properties(index)
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
            "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)"
            "  (GB/s)  (GB/s)"
        )
        sys.stdout.flush()
    for size in _sizes(args.min_bytes, args.max_bytes, args.factor):
        count = max(size // 4, 1)
        size = count * 4
        a, b = inp[:count], out[:count]
        a.fill_(rank + 1)

        def out_of_place(a=a, b=b):
            b.copy_(a)
            dist.all_reduce(b)

        def in_place(a=a):
            dist.all_reduce(a)

        sides = []
        for fn, buf in ((out_of_place, b), (in_place, a)):
            time_us = _time_us(torch, dist, fn, args.iters, args.warmup, device)
            algbw = size / 1.0e3 / time_us
            wrong = _wrong(torch, dist, buf, rank, world)
            sides.append(_format_side(time_us, algbw, algbw * factor, wrong))
            busbws.append(algbw * factor)
        if rank == 0:
            _emit("%12d  %12d  %8s  %6s  %6d%s%s" % (size, count, "float", "sum", -1, sides[0], sides[1]))
            sys.stdout.flush()
    if rank == 0:
        _emit("# Out of bounds values : 0 OK")
        _emit("# Avg bus bandwidth    : %g " % (sum(busbws) / len(busbws)))
        _emit("#")
    dist.destroy_process_group()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpus", type=int, required=True, help="processes (GPUs) on this node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--node-rank", type=int, default=0)
    parser.add_argument("--master-addr", default="127.0.0.1", help="address of node rank 0")
    parser.add_argument("--master-port", type=int, default=0, help="0: a free loopback port (one node only)")
    parser.add_argument("--backend", choices=("nccl", "gloo"), default="nccl")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--min-bytes", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=1 << 30)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    world = args.gpus * args.nodes
    if world < 2 or args.gpus < 1 or args.factor < 2 or args.min_bytes < 1 or args.max_bytes < args.min_bytes:
        parser.error("need >= 2 ranks in all, --factor >= 2 and 1 <= --min-bytes <= --max-bytes")
    if not 0 <= args.node_rank < args.nodes:
        parser.error("--node-rank must be in [0, --nodes)")
    if args.nodes > 1 and not args.master_port:
        parser.error("--master-port is needed across nodes (every node must use the same one)")
    if args.backend == "nccl" and args.device != "cuda":
        parser.error("the nccl backend needs --device cuda; use --backend gloo --device cpu without GPUs")
    port = args.master_port or _free_loopback_port()

    import torch.multiprocessing as mp

    mp.start_processes(_worker, args=(world, port, args), nprocs=args.gpus, start_method="spawn", join=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
