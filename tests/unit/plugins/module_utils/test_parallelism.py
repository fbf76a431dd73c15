# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner tests: published deployments, bad input, model_path, KV formulas."""

import json

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import model_catalog
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.model_memory import ModelShape, total_weight_bytes
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan, runtime_reserve_gib

SGLANG_DS = "https://docs.sglang.io/docs/basic_usage/deepseek_v3.md (recommended settings table)"
VLLM_DS = "https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html (8xH200 FP8)"
VLLM_LLAMA = "https://blog.vllm.ai/2024/07/23/llama31.html (405B: FP8 on one 8xH100 node, BF16 TP8 x PP2)"
R1_CARD = "https://huggingface.co/deepseek-ai/DeepSeek-R1 (distill usage: --tensor-parallel-size 2 / --tp 2)"
ASCEND = "https://docs.vllm.ai/projects/ascend/en/latest/tutorials/models/DeepSeek-R1.html (W8A8: 2 x Atlas 800 A2)"

# (source, request, published layout): the planner must find a fitting plan on that hardware and accept the
# published layout as an override that fits. Sources: seeds/ (the project's source posts) and official guides.
DEPLOYMENTS = [
    (
        "seed 002 layout (SGLang --tp 16 --nnodes 2 --context-length 131072 on 2x8 A800) with the INT8 "
        "checkpoint that runs there: " + SGLANG_DS + " 2 x 8 x A100/A800, meituan/DeepSeek-R1-Block-INT8",
        {
            "model": "meituan/DeepSeek-R1-Block-INT8",
            "accelerator": "A800-80G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "sglang",
            "context_length": 131072,
        },
        {"tensor_parallel": 16},
    ),
    (
        "seed 001: Qwen3-235B-A22B-Instruct-2507 on 8 x A100/A800/H100 80G, vLLM TP8, 0.85, 131072",
        {
            "model": "Qwen/Qwen3-235B-A22B-Instruct-2507",
            "accelerator": "A800-80G",
            "engine": "vllm",
            "context_length": 131072,
            "memory_fraction": 0.85,
        },
        {"tensor_parallel": 8},
    ),
    (
        "seed 001, same on H100",
        {
            "model": "Qwen/Qwen3-235B-A22B-Instruct-2507",
            "accelerator": "H100-80G",
            "engine": "vllm",
            "context_length": 131072,
            "memory_fraction": 0.85,
        },
        {"tensor_parallel": 8},
    ),
    (
        "seed 004: R1-Distill-Qwen-32B on 4 x H100 80G, vLLM TP4 --max-model-len 128000",
        {
            "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "accelerator": "H100-80G",
            "accelerators_per_node": 4,
            "engine": "vllm",
            "context_length": 128000,
        },
        {"tensor_parallel": 4},
    ),
    (
        "seed 004: the same 32B across 2 nodes, vLLM TP2 x PP2",
        {
            "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "accelerator": "H100-80G",
            "accelerators_per_node": 2,
            "nodes": 2,
            "engine": "vllm",
            "context_length": 128000,
        },
        {"tensor_parallel": 2, "pipeline_parallel": 2},
    ),
    (
        "seed 000: R1-Distill-Qwen-7B on one GPU, SGLang --tp 1 --mem-fraction-static 0.93",
        {
            "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "accelerator": "RTX4090",
            "accelerators_per_node": 1,
            "engine": "sglang",
            "memory_fraction": 0.93,
        },
        {"tensor_parallel": 1},
    ),
    (
        "seed 000: R1-Distill-Qwen-7B on 2 nodes of 1 GPU with LWS, SGLang --tp 2 --nnodes 2",
        {
            "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "accelerator": "L40S",
            "accelerators_per_node": 1,
            "nodes": 2,
            "inter_node_link": "roce",
            "engine": "sglang",
            "memory_fraction": 0.93,
        },
        {"tensor_parallel": 2},
    ),
    (
        "seed 003: R1 671B on 16 GPUs via Ray, vLLM --tensor-parallel-size 16 --max-model-len 8192 (H100)",
        {
            "model": "deepseek-ai/DeepSeek-R1",
            "accelerator": "H100-80G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "vllm",
            "context_length": 8192,
            "memory_fraction": 0.95,
        },
        {"tensor_parallel": 16},
    ),
    (
        "R1 model card: R1-Distill-Qwen-32B, vLLM --tensor-parallel-size 2 --max-model-len 32768 " + R1_CARD,
        {
            "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "accelerator": "A100-80G",
            "accelerators_per_node": 2,
            "engine": "vllm",
            "context_length": 32768,
        },
        {"tensor_parallel": 2},
    ),
    (
        "FP8 8 x H200 " + SGLANG_DS,
        {"model": "deepseek-ai/DeepSeek-V3", "accelerator": "H200-141G", "engine": "sglang"},
        {"tensor_parallel": 8},
    ),
    (
        "FP8 8 x B200 " + SGLANG_DS,
        {"model": "deepseek-ai/DeepSeek-V3", "accelerator": "B200", "engine": "sglang"},
        {"tensor_parallel": 8},
    ),
    (
        "FP8 2 x 8 x H20 " + SGLANG_DS,
        {
            "model": "deepseek-ai/DeepSeek-V3",
            "accelerator": "H20-96G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "sglang",
        },
        {"tensor_parallel": 16},
    ),
    (
        "FP8 2 x 8 x H800 " + SGLANG_DS,
        {
            "model": "deepseek-ai/DeepSeek-R1",
            "accelerator": "H800-80G",
            "nodes": 2,
            "inter_node_link": "roce",
            "engine": "sglang",
        },
        {"tensor_parallel": 16},
    ),
    (
        "BF16 2 x 8 x H200 " + SGLANG_DS,
        {
            "model": "deepseek-ai/DeepSeek-V3",
            "weight_dtype": "bf16",
            "accelerator": "H200-141G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "sglang",
        },
        {"tensor_parallel": 16},
    ),
    (
        "BF16 4 x 8 x A100 " + SGLANG_DS,
        {
            "model": "deepseek-ai/DeepSeek-V3",
            "weight_dtype": "bf16",
            "accelerator": "A100-80G",
            "nodes": 4,
            "inter_node_link": "ib",
            "engine": "sglang",
        },
        {"tensor_parallel": 32},
    ),
    (
        "BF16 4 x 8 x H100 " + SGLANG_DS,
        {
            "model": "deepseek-ai/DeepSeek-V3",
            "weight_dtype": "bf16",
            "accelerator": "H100-80G",
            "nodes": 4,
            "inter_node_link": "ib",
            "engine": "sglang",
        },
        {"tensor_parallel": 32},
    ),
    (
        "INT8 16 x A100 " + SGLANG_DS,
        {
            "model": "deepseek-ai/DeepSeek-R1",
            "weight_dtype": "int8",
            "accelerator": "A100-80G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "sglang",
        },
        {"tensor_parallel": 16},
    ),
    (
        "INT8 32 x L40S " + SGLANG_DS,
        {
            "model": "deepseek-ai/DeepSeek-R1",
            "weight_dtype": "int8",
            "accelerator": "L40S",
            "nodes": 4,
            "inter_node_link": "roce",
            "engine": "sglang",
        },
        {"tensor_parallel": 32},
    ),
    (
        "AWQ 8 x A100 " + SGLANG_DS,
        {"model": "deepseek-ai/DeepSeek-R1", "weight_dtype": "int4", "accelerator": "A100-80G", "engine": "sglang"},
        {"tensor_parallel": 8},
    ),
    (
        "TP8 + EP " + VLLM_DS,
        {"model": "deepseek-ai/DeepSeek-R1-0528", "accelerator": "H200-141G", "engine": "vllm"},
        {"tensor_parallel": 8, "expert_parallel": 8},
    ),
    (
        "DP8 + EP " + VLLM_DS,
        {"model": "deepseek-ai/DeepSeek-R1-0528", "accelerator": "H200-141G", "engine": "vllm"},
        {"tensor_parallel": 1, "data_parallel": 8, "expert_parallel": 8},
    ),
    (
        "405B FP8 on 8 x H100 " + VLLM_LLAMA,
        {
            "model": "meta-llama/Llama-3.1-405B-Instruct",
            "weight_dtype": "fp8",
            "accelerator": "H100-80G",
            "engine": "vllm",
        },
        {"tensor_parallel": 8},
    ),
    (
        "405B BF16 on 2 x 8 x H100, TP8 x PP2 " + VLLM_LLAMA,
        {
            "model": "meta-llama/Llama-3.1-405B-Instruct",
            "accelerator": "H100-80G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "vllm",
        },
        {"tensor_parallel": 8, "pipeline_parallel": 2},
    ),
    (
        "R1 W8A8 on 2 x Atlas 800 A2 (8 x 910B 64G), vllm-ascend TP8 DP2 + EP " + ASCEND,
        {
            "model": "vllm-ascend/DeepSeek-R1-W8A8",
            "accelerator": "Ascend-910B-64G",
            "nodes": 2,
            "inter_node_link": "roce",
            "engine": "vllm",
            "context_length": 16384,
        },
        {"tensor_parallel": 8, "data_parallel": 2, "expert_parallel": 16},
    ),
]


@pytest.mark.parametrize("source,request_args,layout", DEPLOYMENTS, ids=[d[0][:60] for d in DEPLOYMENTS])
def test_published_deployment_fits(source, request_args, layout):
    auto = plan(request_args)
    assert auto["fits"], (source, auto["reasons"])
    published_gpus = 1
    for key in ("tensor_parallel", "pipeline_parallel"):
        published_gpus *= layout.get(key, 1)
    assert auto["tensor_parallel"] * auto["pipeline_parallel"] <= published_gpus * layout.get("data_parallel", 1)
    forced = plan(dict(request_args, **layout))
    assert forced["fits"], (source, forced["reasons"])
    for key, value in layout.items():
        assert forced[key] == value
    assert forced["weights_gib_per_accelerator"] < forced["accelerator"]["memory_gib"]
    if request_args.get("context_length"):
        assert forced["max_context_length"] >= request_args["context_length"]
        assert forced["max_concurrent_sequences"] >= 1


def test_seed_r1_int8_on_a800_flags():
    result = plan(DEPLOYMENTS[0][1])
    assert result["engine_args"][:4] == ["--tp-size", "16", "--nnodes", "2"]
    assert result["engine_args"][-4:] == ["--mem-fraction-static", "0.79", "--context-length", "131072"]
    assert result["multi_node"]["per_node_args"][0] == "--dist-init-addr"
    assert result["weight_dtype"] == "int8" and not result["warnings"]
    # 671B INT8 + one fp32 scale per 128x128 block, BF16 embeddings/norms/gates: about 627 GiB over 16 ranks
    assert 38 < result["weights_gib_per_accelerator"] < 42


A800_TWO_NODES = {"accelerator": "A800-80G", "nodes": 2, "inter_node_link": "ib", "context_length": 32768}


def test_fp8_on_ampere_refused_for_sglang_with_alternatives_in_numbers():
    """Issue 10 #3: SGLang's FP8 kernels need SM >= 8.9 (Triton: "fp8e4nv data type is not supported on
    CUDA arch < 89", skypilot-org/skypilot#4723); the A800 is SM 8.0. The plan used to be fits: true."""
    result = plan(dict(A800_TWO_NODES, model="deepseek-ai/DeepSeek-R1", engine="sglang"))
    assert result["fits"] is False and result["engine_args"] == []
    reason = result["reasons"][0]
    assert reason.startswith("sglang v0.5.6.post2 has no FP8 kernels for A800-80G (SM 8.0; it runs them on SM >= 8.9)")
    assert (
        "INT8 W8A8 checkpoint meituan/DeepSeek-R1-Block-INT8: 627 GiB of weights, fits 2 x 8 A800-80G "
        "(TP 16, PP 1)" in reason
    )
    assert "BF16 weights: 1250 GiB of weights, smallest fit: 3 nodes x 8 A800-80G" in reason
    assert "vllm v0.12.0 with these FP8 weights (weight-only kernels): 627 GiB of weights, fits 2 x 8" in reason
    # an FP8 request on a BF16 checkpoint (online quantization) is refused the same way
    online = plan({"model": "Qwen/Qwen3-32B", "accelerator": "A100-80G", "weight_dtype": "fp8", "engine": "sglang"})
    assert online["fits"] is False and "has no FP8 kernels" in online["reasons"][0]


def test_fp8_on_ampere_runs_on_vllm_marlin_with_a_warning():
    result = plan(dict(A800_TWO_NODES, model="deepseek-ai/DeepSeek-R1", engine="vllm"))
    assert result["fits"] and result["weight_dtype"] == "fp8"
    assert any("runs these FP8 weights through weight-only kernels" in w for w in result["warnings"])
    # the same weights on Ada/Hopper need no warning
    hopper = plan(dict(A800_TWO_NODES, model="deepseek-ai/DeepSeek-R1", engine="sglang", accelerator="H800-80G"))
    assert hopper["fits"] and not hopper["warnings"]


def test_int8_checkpoint_methods_only_sglang_loads_are_refused_on_vllm():
    result = plan(dict(A800_TWO_NODES, model="meituan/DeepSeek-R1-Block-INT8", engine="vllm"))
    assert result["fits"] is False
    assert result["reasons"][0].startswith("vllm v0.12.0 cannot load int8 checkpoints (quant_method blockwise_int8)")
    assert (
        "sglang v0.5.6.post2 with these INT8 weights: 627 GiB of weights, fits 2 x 8 A800-80G" in result["reasons"][0]
    )


def test_qwen3_vllm_flags_match_seed():
    result = plan(DEPLOYMENTS[1][1])
    assert result["engine_args"] == [
        "--tensor-parallel-size",
        "8",
        "--gpu-memory-utilization",
        "0.85",
        "--max-model-len",
        "131072",
    ]


def test_r1_bf16_on_two_a800_nodes_refused_with_numbers():
    result = plan(
        {
            "model": "deepseek-ai/DeepSeek-R1",
            "weight_dtype": "bf16",
            "accelerator": "A800-80G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "sglang",
        }
    )
    assert not result["fits"]
    (reason,) = result["reasons"]
    # SGLang 0.5.23's default rule at TP16 on 80 GiB with MLA: (81920 - 17408) / 81920 = 0.7875; the reserve is
    # 0.7875 x (1.2 GiB context + 0.85 GiB NCCL): 16 x (80 x 0.7875 - 1.614) = 982 GiB
    assert "needs 1250 GiB for weights (bf16), 16 x A800-80G give 982 GiB usable (memory fraction 0.79)" in reason
    assert "smallest fit: 3 nodes x 8 A800-80G (TP 8, PP 3)" in reason  # PP across the third node
    assert result["engine_args"] == []  # nothing may be started from a plan that does not fit


def test_kv_does_not_fit_reason_suggests_fp8():
    result = plan(
        {
            "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "accelerator": "H100-80G",
            "accelerators_per_node": 1,
            "engine": "vllm",
            "context_length": 131072,
        }
    )
    assert not result["fits"]
    assert "KV cache holds" in result["reasons"][0] and "kv_cache_dtype fp8" in result["reasons"][0]
    assert "smallest fit: 2 nodes" in result["reasons"][0]


def test_context_capped_when_model_maximum_does_not_fit():
    request = {"model": "meta-llama/Llama-3.1-8B-Instruct", "accelerator": "RTX4090", "accelerators_per_node": 1}
    # SGLang 0.5.23 reserves more on a 24 GB card (4096-token chunks, prefill CUDA graphs): its default fraction
    # 0.70 leaves (24 x 0.70 - 0.70 x 1.2 GiB context) - 14.96 GiB of BF16 weights = about 1 GiB of KV, a context
    # of about 8.9k tokens; 0.5.6.post2's 0.85 leaves room for about four times that
    newer = plan(dict(request, engine_version="0.5.23"))
    assert newer["fits"] and "--mem-fraction-static" in newer["engine_args"]
    assert newer["engine_args"][newer["engine_args"].index("--mem-fraction-static") + 1] == "0.70"
    assert 4096 <= newer["max_context_length"] < 12000
    result = plan(dict(request, engine_version="0.5.6.post2"))
    assert result["fits"] and result["max_context_length"] > 3 * newer["max_context_length"]
    assert 4096 <= result["max_context_length"] < 131072
    assert result["engine_args"][-1] == str(result["max_context_length"])
    assert any("context capped" in w for w in result["warnings"])


def test_small_model_fills_node_with_replicas():
    result = plan({"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "accelerator": "H100-80G", "engine": "sglang"})
    assert (result["tensor_parallel"], result["data_parallel"], result["accelerators_used"]) == (1, 8, 8)
    assert "--dp-size" in result["engine_args"]


def test_vllm_prefers_pipeline_across_nodes_and_ray():
    result = plan(
        {
            "model": "meta-llama/Llama-3.1-405B-Instruct",
            "accelerator": "H100-80G",
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "vllm",
        }
    )
    assert (result["tensor_parallel"], result["pipeline_parallel"], result["nodes"]) == (8, 2, 2)
    assert "--distributed-executor-backend" in result["engine_args"]
    assert result["multi_node"]["launcher"] == "ray"


def test_slow_inter_node_link_forbids_tp_across_nodes():
    with pytest.raises(LlmopsError, match="needs an ib or roce inter-node link"):
        plan(
            {
                "model": "deepseek-ai/DeepSeek-R1",
                "accelerator": "H800-80G",
                "nodes": 2,
                "inter_node_link": "tcp",
                "tensor_parallel": 16,
            }
        )
    result = plan({"model": "deepseek-ai/DeepSeek-R1", "accelerator": "H800-80G", "nodes": 2})
    assert (result["tensor_parallel"], result["pipeline_parallel"]) == (8, 2)
    assert "--pp-size" in result["engine_args"]
    assert any("assuming tcp" in w for w in result["warnings"])


def test_fp8_block_rule_enables_expert_parallel_and_blocks_tp32():
    with pytest.raises(LlmopsError, match="not whole 128-wide quantization blocks"):
        plan(
            {
                "model": "deepseek-ai/DeepSeek-R1",
                "accelerator": "H100-80G",
                "nodes": 4,
                "inter_node_link": "ib",
                "tensor_parallel": 32,
            }
        )
    result = plan({"model": "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "accelerator": "H100-80G", "engine": "vllm"})
    # 1536 / 8 = 192 is not a whole number of 128-wide blocks: experts must not be TP-split
    assert result["expert_parallel"] > 1 and "--enable-expert-parallel" in result["engine_args"]


def test_ascend_flags_and_fp8_refusal():
    result = plan(dict(DEPLOYMENTS[-1][1], **DEPLOYMENTS[-1][2]))
    assert "--quantization" in result["engine_args"] and "ascend" in result["engine_args"]
    assert result["multi_node"]["launcher"] == "vllm-data-parallel"
    with pytest.raises(LlmopsError, match="no FP8 KV cache"):
        plan({"model": "Qwen/Qwen3-8B", "accelerator": "Ascend-910B-64G", "kv_cache_dtype": "fp8"})
    fp8 = plan(
        {
            "model": "deepseek-ai/DeepSeek-R1",
            "accelerator": "Ascend-910B-64G",
            "nodes": 4,
            "inter_node_link": "roce",
            "engine": "vllm",
            "fail_on_no_fit": False,
        }
    )
    assert fp8["weight_dtype"] == "bf16" and any("cannot run the FP8 checkpoint" in w for w in fp8["warnings"])


def test_consumer_card_has_no_nvlink():
    with pytest.raises(LlmopsError, match="RTX4090 has no NVLink"):
        plan({"model": "Qwen/Qwen3-8B", "accelerator": "RTX4090", "intra_node_link": "nvlink"})
    result = plan({"model": "Qwen/Qwen3-32B", "accelerator": "RTX4090", "context_length": 32768})
    assert result["tensor_parallel"] > 1 and any("no NVLink" in w for w in result["warnings"])


def test_fp8_kv_cache_halves_kv_and_sets_flag():
    base = {"model": "Qwen/Qwen2.5-72B-Instruct", "accelerator": "H100-80G", "engine": "sglang"}
    bf16, fp8 = plan(base), plan(dict(base, kv_cache_dtype="fp8"))
    assert fp8["kv_bytes_per_token"] * 2 == bf16["kv_bytes_per_token"]
    assert fp8["kv_cache_tokens"] > 1.9 * bf16["kv_cache_tokens"]
    assert fp8["engine_args"][-2:] == ["--kv-cache-dtype", "fp8_e4m3"]


def test_sglang_dp_attention_replicates_attention():
    # the same fraction for both, so the KV difference is the attention layout's alone (SGLang's default rule
    # reserves more for DP attention: test_engine_memory.py)
    base = {"model": "deepseek-ai/DeepSeek-V3", "accelerator": "H200-141G", "engine": "sglang", "memory_fraction": 0.8}
    plain, dpa = plan(dict(base, tensor_parallel=8)), plan(dict(base, tensor_parallel=8, attention_data_parallel=8))
    assert dpa["engine_args"][:5] == ["--tp-size", "8", "--dp-size", "8", "--enable-dp-attention"]
    assert dpa["accelerators_used"] == 8
    assert dpa["weights_gib_per_accelerator"] > plain["weights_gib_per_accelerator"] + 8  # full attention per rank
    assert dpa["kv_cache_tokens"] > 4 * plain["kv_cache_tokens"]  # each rank caches its own requests


# ---- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        ({"model": "acme/NoSuchModel-7B", "accelerator": "H100-80G"}, "unknown model 'acme/NoSuchModel-7B'"),
        ({"accelerator": "H100-80G"}, "give model"),
        ({"model": "Qwen/Qwen3-8B"}, "give accelerator"),
        ({"model": "Qwen/Qwen3-8B", "accelerator": "TPU-v9"}, "unknown accelerator"),
        (
            {"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "accelerators_per_node": 0},
            "no accelerators to plan for",
        ),
        ({"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "nodes": 0}, "no accelerators to plan for"),
        (
            {"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "memory_fraction": 0},
            r"memory_fraction must be in \(0, 1\]",
        ),
        ({"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "memory_fraction": 1.2}, r"memory_fraction must be in"),
        (
            {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "accelerator": "H100-80G", "tensor_parallel": 3},
            "tensor_parallel=3 does not divide the 40 attention heads",
        ),
        (
            {"model": "deepseek-ai/DeepSeek-R1", "accelerator": "H100-80G", "tensor_parallel": 6},
            "does not divide the 128 attention heads",
        ),
        ({"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "tensor_parallel": 16}, "needs 16 accelerators"),
        ({"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "expert_parallel": 2}, "needs a MoE model"),
        (
            {
                "model": "deepseek-ai/DeepSeek-V3",
                "accelerator": "H200-141G",
                "engine": "vllm",
                "tensor_parallel": 8,
                "expert_parallel": 4,
            },
            "vLLM sets the expert-parallel size",
        ),
        (
            {
                "model": "deepseek-ai/DeepSeek-V3",
                "accelerator": "H200-141G",
                "engine": "vllm",
                "attention_data_parallel": 8,
            },
            "attention_data_parallel is SGLang",
        ),
        ({"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "engine": "tgi"}, "engine must be one of"),
        ({"model": "Qwen/Qwen3-8B", "accelerator": "A100-80G", "weight_dtype": "fp4"}, "weight_dtype must be one of"),
    ],
)
def test_bad_input_is_refused_with_a_message(args, message):
    with pytest.raises(LlmopsError, match=message):
        plan(args)


def test_config_missing_fields(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    with pytest.raises(
        LlmopsError, match="lacks intermediate_size, num_attention_heads, num_hidden_layers, vocab_size"
    ):
        plan({"model_path": str(tmp_path), "accelerator": "H100-80G"})


def test_model_path_without_config(tmp_path):
    with pytest.raises(LlmopsError, match="has no config.json"):
        plan({"model_path": str(tmp_path), "accelerator": "H100-80G"})


def test_model_path_invalid_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LlmopsError, match="is not valid JSON"):
        plan({"model_path": str(tmp_path), "accelerator": "H100-80G"})


# ---- model_path ----------------------------------------------------------------------------------------------


def _write_model(folder, config, total_size, layers):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    weight_map = {"model.embed_tokens.weight": "model-00001.safetensors", "lm_head.weight": "model-00002.safetensors"}
    for layer in range(layers):
        weight_map["model.layers.%d.self_attn.o_proj.weight" % layer] = "model-00001.safetensors"
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def test_model_path_uses_exact_index_bytes(tmp_path):
    config = dict(model_catalog.MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"]["config"])
    computed = total_weight_bytes(ModelShape(config), "bf16")
    exact = int(computed * 1.02)  # pretend the real checkpoint is 2% larger than the arithmetic
    _write_model(tmp_path / "m", config, exact, config["num_hidden_layers"])
    result = plan(
        {
            "model_path": str(tmp_path / "m"),
            "accelerator": "H100-80G",
            "accelerators_per_node": 4,
            "engine": "vllm",
            "tensor_parallel": 4,
        }
    )
    assert result["weights_source"] == "safetensors index"
    assert result["weights_gib_total"] == round(exact / float(1 << 30), 2)
    catalog = plan(
        {
            "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "accelerator": "H100-80G",
            "accelerators_per_node": 4,
            "engine": "vllm",
            "tensor_parallel": 4,
        }
    )
    ratio = result["weights_gib_per_accelerator"] / catalog["weights_gib_per_accelerator"]
    assert ratio == pytest.approx(1.02, abs=0.001)
    # the config.json file itself works as model_path too
    assert plan(
        {"model_path": str(tmp_path / "m" / "config.json"), "accelerator": "H100-80G", "accelerators_per_node": 4}
    )["fits"]


def test_model_path_index_mtp_layer_is_not_counted(tmp_path):
    config = dict(model_catalog.MODELS["deepseek-ai/DeepSeek-V3"]["config"])
    shape = ModelShape(config)
    main = total_weight_bytes(shape, "fp8")
    _write_model(tmp_path / "v3", config, int(main * 1.017), 62)  # 61 layers + the MTP layer 61
    result = plan({"model_path": str(tmp_path / "v3"), "accelerator": "H200-141G", "engine": "sglang"})
    # the MTP layer (~11.4B params) is subtracted: what remains is close to the main model
    assert result["weights_gib_total"] == pytest.approx(main / float(1 << 30), rel=0.003)


def test_model_path_multimodal_text_config_and_fp8_detection(tmp_path):
    text = dict(model_catalog.MODELS["Qwen/Qwen3-8B"]["config"])
    wrapper = {
        "model_type": "qwen3_vl",
        "text_config": text,
        "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    }
    (tmp_path / "config.json").write_text(json.dumps(wrapper))
    result = plan({"model_path": str(tmp_path), "accelerator": "L40S", "accelerators_per_node": 1})
    assert result["weight_dtype"] == "fp8" and result["model"]["layers"] == 36
    assert result["weights_source"] == "config.json"


# ---- shapes and KV formulas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", sorted(model_catalog.MODELS))
def test_catalog_parameter_count_matches_published(model_id):
    entry = model_catalog.MODELS[model_id]
    shape = ModelShape(entry["config"], model_id)
    total = shape.checkpoint_parameters(entry.get("params_with_mtp"), not entry.get("mtp_shares_embeddings")) / 1e9
    assert total == pytest.approx(entry["params_b"], rel=entry.get("params_tolerance", 0.005))


def test_kv_formula_gqa_and_mla():
    llama70 = ModelShape(model_catalog.MODELS["meta-llama/Llama-3.1-70B-Instruct"]["config"])
    assert llama70.kv_bytes_per_token(2) == 2 * 80 * 8 * 128 * 2 == 327680
    r1 = ModelShape(model_catalog.MODELS["deepseek-ai/DeepSeek-R1"]["config"])
    assert r1.kv_bytes_per_token(2) == 61 * (512 + 64) * 2 == 70272
    assert r1.kv_bytes_per_token(1) == 35136


def test_gqa_kv_sharded_until_tp_exceeds_kv_heads():
    # Qwen3-235B: 4 KV heads. Per-accelerator KV per token halves from TP1 to TP2 to TP4, then stays
    # (heads replicated), so capacity per token stops growing beyond the weights' share.
    shape = ModelShape(model_catalog.MODELS["Qwen/Qwen3-235B-A22B"]["config"])
    per_layer = {tp: 2 * shape.head_dim * max(1, shape.kv_heads // tp) * 2 for tp in (1, 2, 4, 8, 16)}
    assert per_layer[1] == 2 * per_layer[2] == 4 * per_layer[4] == 4 * per_layer[8] == 4 * per_layer[16]
    base = {"model": "Qwen/Qwen3-235B-A22B", "accelerator": "H200-141G", "memory_fraction": 0.9, "engine": "sglang"}
    tp4 = plan(dict(base, tensor_parallel=4))
    tp8 = plan(dict(base, tensor_parallel=8, data_parallel=1))
    reserve = runtime_reserve_gib("sglang", 0.9, 8)  # NVLink TP: CUDA context + NCCL, scaled by the fraction
    per_gpu_kv_tp4 = 0.9 * tp4["accelerator"]["memory_gib"] - tp4["weights_gib_per_accelerator"] - reserve
    per_gpu_kv_tp8 = 0.9 * tp8["accelerator"]["memory_gib"] - tp8["weights_gib_per_accelerator"] - reserve
    # each TP8 rank stores 1 KV head like each TP4 rank: tokens scale with KV room, not with TP
    ratio = tp8["kv_cache_tokens"] / float(tp4["kv_cache_tokens"])
    assert ratio == pytest.approx(per_gpu_kv_tp8 / per_gpu_kv_tp4, rel=0.01)


def test_mla_kv_replicated_under_tp():
    # MLA's latent is replicated on every TP rank: going from TP8 to TP16 only adds the freed weight room
    base = {
        "model": "deepseek-ai/DeepSeek-V3",
        "accelerator": "H200-141G",
        "memory_fraction": 0.9,
        "nodes": 2,
        "inter_node_link": "ib",
        "engine": "sglang",
    }
    tp8, tp16 = plan(dict(base, tensor_parallel=8)), plan(dict(base, tensor_parallel=16))
    reserve = runtime_reserve_gib("sglang", 0.9, 16)
    room8 = 0.9 * tp8["accelerator"]["memory_gib"] - tp8["weights_gib_per_accelerator"] - reserve
    room16 = 0.9 * tp16["accelerator"]["memory_gib"] - tp16["weights_gib_per_accelerator"] - reserve
    per_token_gib = 61 * 576 * 2 / float(1 << 30)
    assert tp8["kv_cache_tokens"] == pytest.approx(room8 / per_token_gib, rel=0.001)
    assert tp16["kv_cache_tokens"] == pytest.approx(room16 / per_token_gib, rel=0.001)


def test_fp8_checkpoint_keeps_embeddings_in_bf16():
    shape = ModelShape(model_catalog.MODELS["deepseek-ai/DeepSeek-V3"]["config"])
    fp8 = total_weight_bytes(shape, "fp8")
    embeddings = 2 * 129280 * 7168 * 2  # embed_tokens + lm_head, bf16
    assert fp8 == pytest.approx((shape.total_parameters() - 2 * 129280 * 7168) * 1.0 + embeddings, rel=0.002)
    assert total_weight_bytes(shape, "bf16") == pytest.approx(2 * shape.total_parameters(), rel=1e-9)


def test_inside_one_node_tensor_parallel_beats_pipeline_stages():
    """Seed 001: Qwen3-235B on one 8-GPU node runs TP8, not TP1 x PP7 (fewer GPUs, but PP inside NVLink)."""
    result = plan(
        {
            "model": "Qwen/Qwen3-235B-A22B-Instruct-2507",
            "accelerator": "A800-80G",
            "accelerators_per_node": 8,
            "nodes": 1,
            "engine": "vllm",
        }
    )
    assert (result["tensor_parallel"], result["pipeline_parallel"]) == (8, 1)
    assert result["engine_args"][:2] == ["--tensor-parallel-size", "8"]
