# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""All-reduce sweep through PyTorch's NCCL backend, for hosts without nccl-tests.

nccl_check writes this file's source to a temporary file and runs it with the host's python
(the one that has torch): one process per GPU through multiprocessing's spawn, rendezvous on
loopback. Rank 0 prints rows in all_reduce_perf's layout so nccl_tests.parse_all_reduce_perf
reads both tools. Out-of-place rows are a device copy into a second buffer followed by an
in-place all-reduce (torch has no out-of-place all_reduce), so their time includes that copy.
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
            return source
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


def _time_us(torch, dist, fn, iters, warmup):
    for _iteration in range(warmup):
        fn()
    torch.cuda.synchronize()
    dist.barrier()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _iteration in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    elapsed = torch.tensor([start.elapsed_time(end) * 1000.0 / iters], device="cuda")
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


def _worker(rank, world, port, args):
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
    max_count = args.max_bytes // 4
    inp = torch.empty(max_count, dtype=torch.float32, device="cuda")
    out = torch.empty(max_count, dtype=torch.float32, device="cuda")
    factor = 2.0 * (world - 1) / world
    busbws = []
    if rank == 0:
        _emit(
            "# nccl_torch_sweep torch %s nGpus %d minBytes %d maxBytes %d step: %d(factor) warmup iters: %d iters: %d"
            % (torch.__version__, world, args.min_bytes, args.max_bytes, args.factor, args.warmup, args.iters)
        )
        _emit("#\n# Using devices")
        for index in range(world):
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
            time_us = _time_us(torch, dist, fn, args.iters, args.warmup)
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
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--min-bytes", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=1 << 30)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    if args.gpus < 2 or args.factor < 2 or args.min_bytes < 1 or args.max_bytes < args.min_bytes:
        parser.error("need --gpus >= 2, --factor >= 2 and 1 <= --min-bytes <= --max-bytes")

    import torch.multiprocessing as mp

    mp.start_processes(
        _worker, args=(args.gpus, _free_loopback_port(), args), nprocs=args.gpus, start_method="spawn", join=True
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
