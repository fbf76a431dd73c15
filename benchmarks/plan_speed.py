# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan 10,000 configurations and print how long it took (target: under 2 s in all).

Configurations cycle through every catalog model x accelerator x engine x node count x
context length x KV dtype, so fitting and non-fitting plans (with their smallest-cluster
search) are both in the mix.

    python3 benchmarks/plan_speed.py [--count N]
"""

import argparse
import itertools
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_planner():
    base = tempfile.mkdtemp(prefix="llmops-collections-")
    link = os.path.join(base, "ansible_collections", "llmops", "inference")
    os.makedirs(os.path.dirname(link))
    os.symlink(ROOT, link)
    sys.path.insert(0, base)
    from ansible_collections.llmops.inference.plugins.module_utils import (
        accelerator_catalog,
        model_catalog,
        parallelism,
    )

    return accelerator_catalog, model_catalog, parallelism


def configurations(accelerator_catalog, model_catalog, count):
    grid = itertools.product(
        sorted(model_catalog.MODELS),
        sorted(accelerator_catalog.ACCELERATORS),
        ("sglang", "vllm"),
        (1, 2, 4),
        (None, 8192, 131072),
        ("auto", "fp8"),
    )
    for model, accelerator, engine, nodes, context, kv in itertools.islice(itertools.cycle(grid), count):
        if kv == "fp8" and accelerator.startswith("Ascend"):
            kv = "auto"
        yield {
            "model": model,
            "accelerator": accelerator,
            "engine": engine,
            "nodes": nodes,
            "inter_node_link": "ib",
            "context_length": context,
            "kv_cache_dtype": kv,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000)
    args = parser.parse_args()
    accelerator_catalog, model_catalog, parallelism = import_planner()
    requests = list(configurations(accelerator_catalog, model_catalog, args.count))
    fits = errors = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for request in requests:
        try:
            fits += parallelism.plan(request)["fits"]
        except parallelism.LlmopsError:
            errors += 1
    elapsed = time.perf_counter() - start
    # CPU seconds too: on a shared, loaded machine the wall clock also counts other processes' time
    cpu = time.process_time() - cpu_start
    print("| configurations | fit | no fit | refused | total s | cpu s | per plan ms | target |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(
        "| %d | %d | %d | %d | %.3f | %.3f | %.3f | < 2 s: %s |"
        % (
            len(requests),
            fits,
            len(requests) - fits - errors,
            errors,
            elapsed,
            cpu,
            1000 * elapsed / len(requests),
            "met" if elapsed < 2.0 else "MISSED",
        )
    )
    return 0 if elapsed < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
