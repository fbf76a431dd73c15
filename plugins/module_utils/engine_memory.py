# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each engine release keeps back from an accelerator's memory, per version.

The planner sizes the KV pool from the memory fraction the engine is given. When the plan leaves the
fraction to the engine, it is the engine's own default rule, and that rule changed across releases:

* SGLang 0.5.6.post2 (``sglang/srt/server_args.py``, ``ServerArgs._handle_gpu_memory_settings``) and
  SGLang 0.5.23 (``sglang/srt/arg_groups/memory_hook.py``, ``handle_gpu_memory_settings``,
  ``reserve_for_graph_mb``, ``reserve_for_deepep_a2a_mb``): mem_fraction_static = (memory - reserved) /
  memory, the reserve in MiB from the chunked-prefill size, the CUDA-graph batch size, TP x PP, DP
  attention, speculative decoding (0.5.6.post2), prefill CUDA graphs and DeepEP buffers (0.5.23).
* vLLM 0.12.0/0.13.0 (``vllm/config/cache.py``: gpu_memory_utilization 0.9; ``vllm/v1/worker/gpu_worker.py``
  ``determine_available_memory``: KV = budget - weights - profiled activations, CUDA graphs captured
  afterwards outside the budget); vLLM 0.32.0/0.33.0 (cache.py: 0.92; gpu_worker.py subtracts the profiled
  CUDA-graph memory from the budget too, VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1, "default since v0.21.0"
  in its own log line).

The code was read from the PyPI sdists/wheels of those versions (``pip download --no-deps``); each rule
below names its version and file. Memory is in MiB as the engines compute it (nvidia-smi memory.total).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import engine_cli
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# The releases whose rule is modelled: a version uses the newest rule at or below it.
SGLANG_RULES = ("0.5.6.post2", "0.5.23")
# vLLM: 0.21.0 is where its log line dates the CUDA-graph estimate (and 0.92) from; 0.13.0 has neither.
VLLM_RULES = ("0.12.0", "0.21.0")
RULES = {"sglang": SGLANG_RULES, "vllm": VLLM_RULES}
RULE_SOURCES = {
    ("sglang", "0.5.6.post2"): "sglang 0.5.6.post2 sglang/srt/server_args.py _handle_gpu_memory_settings",
    ("sglang", "0.5.23"): "sglang 0.5.23 sglang/srt/arg_groups/memory_hook.py handle_gpu_memory_settings",
    ("vllm", "0.12.0"): "vllm 0.12.0/0.13.0 vllm/config/cache.py gpu_memory_utilization=0.9, CUDA graphs outside",
    ("vllm", "0.21.0"): "vllm 0.32.0/0.33.0 vllm/config/cache.py gpu_memory_utilization=0.92, CUDA graphs inside",
}
# vLLM's profiled CUDA-graph memory (>= 0.21): measured at start, not computable here. Published logs show
# 0.17 GiB (a TP4 model on 24 GB cards) and 0.36 GiB (TP2), both "Estimated CUDA graph memory: ... total";
# 0.5 GiB covers those with room for MoE models' FULL graphs.
VLLM_CUDAGRAPH_ESTIMATE_GIB = 0.5
# Speculative decoding flags the plans emit (SGLang MTP): steps, top-k, draft tokens (= steps + 1 at top-k 1,
# which SGLang enforces: server_args.py _handle_speculative_decoding in 0.5.6.post2).
MTP_STEPS = 3


def rule_version(engine, version):
    """(the rule's version, warnings) for ``version`` of ``engine``; None means the newest known release."""
    rules = RULES[engine]
    warnings = []
    version = version or engine_cli.newest_known(engine)
    parsed = engine_cli.parse_version(version)
    if parsed is None:
        raise LlmopsError("engine_version %r is not a version such as 0.5.23 or 0.33.0" % (version,))
    applicable = [rule for rule in rules if engine_cli.parse_version(rule) <= parsed]
    if not applicable:
        warnings.append(
            "%s %s is older than the oldest modelled memory rule (%s): planned with that rule"
            % (engine, version, rules[0])
        )
        return rules[0], version, warnings
    return applicable[-1], version, warnings


def _sglang_capacity_defaults(rule, gpu_mib, tp, ascend):
    """(chunked_prefill_size, decode CUDA-graph max batch) SGLang picks by memory capacity and TP."""
    if gpu_mib < 20 * 1024:
        return 2048, 8
    if rule == "0.5.6.post2" and ascend and gpu_mib < 32 * 1024:  # Atlas A2B4 (is_npu branch)
        return 32768, 16 if tp < 4 else 64
    if gpu_mib < 35 * 1024:
        if rule == "0.5.6.post2":
            return 2048, 24 if tp < 4 else 80
        return 4096, 48 if tp < 4 else 160
    if gpu_mib < 60 * 1024:
        return 4096, 32 if tp < 4 else 160
    if rule == "0.5.6.post2" and ascend and gpu_mib < 64 * 1024:  # Atlas A2 / A3 (is_npu branch)
        return 32768, 64 if tp < 4 else 128
    if gpu_mib < 160 * 1024:  # H100/A100 (< 90 GiB) and H20/H200 take the same values
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def _prefill_graph_sizes(max_bs):
    """sglang 0.5.23 arg_groups/cuda_graph_hook.py generate_prefill_cuda_graph_batch_sizes."""
    sizes = (
        list(range(4, 33, 4))
        + list(range(48, 257, 16))
        + list(range(288, 513, 32))
        + list(range(576, 1024 + 1, 64))
        + list(range(1280, 4096 + 1, 256))
        + list(range(4608, max_bs + 1, 512))
    )
    return [size for size in sizes if size <= max_bs]


def sglang_reserved_mib(
    rule,
    gpu_mib,
    tp=1,
    pp=1,
    attn_dp=1,
    mla=False,
    deepep=False,
    speculative=False,
    ascend=False,
    cuda_graph_max_bs=None,
    chunked_prefill_size=None,
):
    """MiB SGLang keeps out of mem_fraction_static by default (activations, CUDA graphs, buffers)."""
    chunk, graph_bs = _sglang_capacity_defaults(rule, gpu_mib, tp, ascend)
    chunk = chunked_prefill_size or chunk
    graph_bs = cuda_graph_max_bs or graph_bs
    reserved = 512.0 + max(chunk if chunk > 0 else 16384, 2048) * 1.5  # max_prefill_tokens 16384 when chunking is off
    reserved += graph_bs * 2
    reserved += tp * pp / 8.0 * 1024
    if attn_dp > 1:
        reserved += graph_bs * attn_dp * 3
        if graph_bs > 300:
            reserved += graph_bs * attn_dp * 1.5
    if rule == "0.5.6.post2":
        if gpu_mib > 60 * 1024:
            reserved = max(reserved, 10 * 1024)
        if speculative:
            reserved += 2 * 1024  # EAGLE/NEXTN draft model and its CUDA graphs
        return reserved
    # 0.5.23: the prefill CUDA graph (breakable by default on CUDA) and DeepEP buffers
    if not ascend:
        if mla:
            reserved += 1.5 * 1024
        else:
            reserved += len(_prefill_graph_sizes(chunk)) * 8
        if deepep:
            reserved += 1024
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if deepep and not ascend:
        reserved += 2 * 1024
    return reserved


def sglang_memory_fraction(rule, gpu_mib, **layout):
    """SGLang's default mem_fraction_static for this layout, rounded as SGLang rounds it (3 places)."""
    return round((gpu_mib - sglang_reserved_mib(rule, gpu_mib, **layout)) / gpu_mib, 3)


def vllm_defaults(rule):
    """(default gpu_memory_utilization, GiB of CUDA-graph memory taken from that budget)."""
    if rule == "0.12.0":
        return 0.9, 0.0
    return 0.92, VLLM_CUDAGRAPH_ESTIMATE_GIB


def sglang_mtp_args():
    """SGLang's MTP speculative decoding with the model's own next-n layers (NEXTN is EAGLE's alias)."""
    return [
        "--speculative-algorithm",
        "EAGLE",
        "--speculative-num-steps",
        str(MTP_STEPS),
        "--speculative-eagle-topk",
        "1",
        "--speculative-num-draft-tokens",
        str(MTP_STEPS + 1),
    ]


def vllm_mtp_args():
    """vLLM's MTP speculative decoding ("mtp"; deepseek_mtp is its deprecated alias from 0.12.0 on)."""
    return ["--speculative-config", '{"method": "mtp", "num_speculative_tokens": 1}']
