# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Architectures beyond plain GQA/MLA: sliding windows, sinks, gated DeltaNet, the V3.2 indexer, MTP.

KV sizes are checked against hand calculations from each config; every new catalog model has its
parameter total (0.2%, exact where the published count is) and one published deployment the planner agrees with.
"""

import json

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import model_catalog
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.model_memory import ModelShape
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan

NEW_MODELS = [
    "deepseek-ai/DeepSeek-V3.1",
    "deepseek-ai/DeepSeek-V3.1-Terminus",
    "deepseek-ai/DeepSeek-V3.2-Exp",
    "deepseek-ai/DeepSeek-V3.2",
    "moonshotai/Kimi-K2-Instruct",
    "moonshotai/Kimi-K2-Instruct-0905",
    "moonshotai/Kimi-K2-Thinking",
    "zai-org/GLM-4.5",
    "zai-org/GLM-4.5-FP8",
    "zai-org/GLM-4.6",
    "zai-org/GLM-4.6-FP8",
    "openai/gpt-oss-120b",
    "openai/gpt-oss-20b",
    "Qwen/Qwen3-Next-80B-A3B-Instruct",
    "Qwen/Qwen3-Coder-480B-A35B-Instruct",
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8",
    "MiniMaxAI/MiniMax-M2",
]


def shape_of(model_id):
    return ModelShape(model_catalog.MODELS[model_id]["config"], model_id)


@pytest.mark.parametrize("model_id", NEW_MODELS)
def test_parameter_total_matches_published(model_id):
    entry = model_catalog.MODELS[model_id]
    shape = shape_of(model_id)
    total = shape.checkpoint_parameters(entry.get("params_with_mtp"), not entry.get("mtp_shares_embeddings"))
    assert total / 1e9 == pytest.approx(entry["params_b"], rel=entry.get("params_tolerance", 0.002))


def test_parameter_totals_against_exact_published_counts():
    """Where the published figure is exact, the arithmetic must be too (sources in model_catalog.py)."""
    nxt = shape_of("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert nxt.checkpoint_parameters(with_mtp=True) == 81324862720  # the safetensors count of the checkpoint
    # GLM-4.6's MTP layer shares the model's embedding and head; GLM-4.5's stores copies (vLLM PR 27597)
    glm45, glm46 = shape_of("zai-org/GLM-4.5"), shape_of("zai-org/GLM-4.6")
    assert glm45.checkpoint_parameters(True) - glm46.checkpoint_parameters(True, False) == 2 * 151552 * 5120
    assert (
        round(glm45.checkpoint_parameters(True) / 1e9) == 358
        and round(glm46.checkpoint_parameters(True, False) / 1e9) == 357
    )
    # the engines still allocate the copies when they load the MTP layer: memory keeps them
    assert glm46.mtp_parameters() == glm45.mtp_parameters()
    # Kimi-K2: config arithmetic plus the FP8 checkpoint's block scales (one fp32 per 128 x 128 weights)
    kimi = shape_of("moonshotai/Kimi-K2-Instruct")
    assert (kimi.total_parameters() * (1 + 1 / 16384.0)) / 1e9 == pytest.approx(1026.5, abs=0.05)
    assert shape_of("MiniMaxAI/MiniMax-M2").total_parameters() / 1e9 == pytest.approx(228.7, abs=0.05)


def test_gpt_oss_sliding_window_kv_hand_calculation():
    """gpt-oss-120b: 18 full + 18 sliding (128-token) layers, 8 KV heads of 64, BF16: 2048 bytes/token/layer."""
    shape = shape_of("openai/gpt-oss-120b")
    per_layer = 2 * 8 * 64 * 2
    assert shape.attn_types[:2] == ["sliding", "full"] and shape.window == 128
    assert shape.kv_bytes_per_token(2) == 36 * per_layer == 73728
    assert shape.sequence_kv_bytes(8192) == 18 * 8192 * per_layer + 18 * 128 * per_layer
    # o_proj bias and one sink per head are counted with attention (116.83B total, checked above)
    assert shape.parameter_counts()["moe"]["small"] == 64 * 64 + 2 * 8 * 64 + 2880 + 64 + 2 * 2880


def test_qwen3_next_linear_attention_kv_and_state_hand_calculation():
    """Qwen3-Next: full attention (2 KV heads of 256) on layers 4, 8, ..., 48; gated DeltaNet elsewhere with
    a per-sequence state: 32 value heads x 128 x 128 recurrent + (2*16*128 + 32*128) channels x 3 conv taps."""
    shape = shape_of("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert shape.attn_types.count("full") == 12 and shape.attn_types[3] == "full" and shape.attn_types[0] == "linear"
    assert shape.kv_bytes_per_token(2) == 12 * 2 * 2 * 256 * 2 == 24576
    state = 32 * 128 * 128 * 2 + (2 * 16 * 128 + 32 * 128) * 3 * 2
    assert shape.linear_state_bytes(2, 2) == state == 1097728
    assert shape.sequence_kv_bytes(4096) == 12 * 4096 * 2048 + 36 * state
    assert shape.total_parameters() == 79674391296  # without the MTP layer


def test_deepseek_v32_indexer_adds_a_per_token_cache():
    """V3.2: MLA latent (512 + 64) x 2 bytes plus the indexer's FP8 key (128) and its fp32 scale (4) per layer."""
    v32, v31 = shape_of("deepseek-ai/DeepSeek-V3.2"), shape_of("deepseek-ai/DeepSeek-V3.1")
    assert v32.kv_bytes_per_token(2) == 61 * (576 * 2 + 132) == 78324
    assert v31.kv_bytes_per_token(2) == 61 * 576 * 2 == 70272
    # wq_b (1536 x 64 x 128), wk (7168 x 128), weights_proj (7168 x 64) and k_norm per layer
    assert v32.total_parameters() - v31.total_parameters() == 61 * (1536 * 8192 + 7168 * 128 + 7168 * 64 + 256)


def test_mtp_layers_loaded_only_for_speculative_decoding():
    base = {"model": "deepseek-ai/DeepSeek-V3", "accelerator": "H200-141G", "engine": "sglang"}
    plain, mtp = plan(base), plan(dict(base, speculative_mtp=True))
    # one more MoE layer (~11.5B FP8 params + its BF16 projection and embedding copies) over 8 ranks
    extra = mtp["weights_gib_per_accelerator"] - plain["weights_gib_per_accelerator"]
    assert 1.3 < extra < 2.2
    assert mtp["kv_cache_tokens"] < plain["kv_cache_tokens"]
    v3 = shape_of("deepseek-ai/DeepSeek-V3")  # the model card's 685B = 671B + the MTP module
    assert (v3.total_parameters() + v3.mtp_parameters()) / 1e9 == pytest.approx(685, rel=0.002)
    with pytest.raises(LlmopsError, match="has no multi-token-prediction layers"):
        plan(dict(base, model="Qwen/Qwen3-8B", speculative_mtp=True))


def _config(tmp_path, **changes):
    config = dict(model_catalog.MODELS["Qwen/Qwen3-8B"]["config"], **changes)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"layer_types": ["mamba"] * 36}, "has layer type mamba, which the planner does not model"),
        ({"hybrid_override_pattern": "M-M-M*"}, "sets hybrid_override_pattern"),
        ({"layer_types": ["full_attention"] * 3}, "layer_types has 3 entries for 36 layers"),
        ({"layer_types": ["sliding_attention"] * 36}, "has sliding_attention layers but no sliding_window"),
        ({"full_attention_interval": 4}, "has linear_attention layers but lacks linear_num_key_heads"),
    ],
)
def test_unknown_or_incomplete_layer_types_refused_by_name(tmp_path, changes, message):
    with pytest.raises(LlmopsError, match=message):
        plan({"model_path": _config(tmp_path, **changes), "accelerator": "H100-80G"})


def test_window_layers_let_one_sequence_exceed_the_token_pool():
    """vLLM sizes every attention layer alike (its reported tokens count the window layers at full size),
    but one sequence only needs the window in those layers: gpt-oss-120b's 131072 context fits one H100."""
    # vLLM 0.12's budget (0.9): its pool is below 131072 tokens; 0.33's 0.92 holds more than that
    result = plan(
        {
            "model": "openai/gpt-oss-120b",
            "accelerator": "H100-80G",
            "accelerators_per_node": 1,
            "engine": "vllm",
            "engine_version": "0.12.0",
        }
    )
    assert result["fits"] and result["max_context_length"] == 131072
    assert result["kv_cache_tokens"] < 131072 < result["kv_cache_tokens"] * 2
    assert result["max_concurrent_sequences"] >= 1


H200 = "H200-141G"
DEPLOYED = [
    (
        "openai/gpt-oss-120b on one 80 GB GPU (OpenAI model card; vLLM GPT-OSS recipe: H100 TP1)",
        {"model": "openai/gpt-oss-120b", "accelerator": "H100-80G", "accelerators_per_node": 1, "engine": "vllm"},
        {"tensor_parallel": 1},
    ),
    (
        "openai/gpt-oss-20b within 16 GB (OpenAI model card): one 24 GB card",
        {"model": "openai/gpt-oss-20b", "accelerator": "L40S", "accelerators_per_node": 1, "engine": "vllm"},
        {"tensor_parallel": 1},
    ),
    (
        "DeepSeek-V3.1 on 8 x H200, TP 8 (SGLang DeepSeek guide / vLLM recipe)",
        {"model": "deepseek-ai/DeepSeek-V3.1", "accelerator": H200, "engine": "sglang"},
        {"tensor_parallel": 8},
    ),
    (
        "DeepSeek-V3.2 on 8 x H200, --tp 8 --dp 8 --enable-dp-attention (SGLang DeepSeek-V3.2 guide)",
        {"model": "deepseek-ai/DeepSeek-V3.2", "accelerator": H200, "engine": "sglang"},
        {"tensor_parallel": 8, "attention_data_parallel": 8},
    ),
    (
        "Kimi-K2-Instruct FP8, 128K context: 16 x H200 with TP 16 (Kimi-K2 deployment guidance)",
        {
            "model": "moonshotai/Kimi-K2-Instruct",
            "accelerator": H200,
            "nodes": 2,
            "inter_node_link": "ib",
            "engine": "vllm",
            "context_length": 131072,
        },
        {"tensor_parallel": 16},
    ),
    (
        "Kimi-K2-Thinking INT4 on 8 x H200, TP 8 (vLLM Kimi-K2 recipe)",
        {"model": "moonshotai/Kimi-K2-Thinking", "accelerator": H200, "engine": "vllm"},
        {"tensor_parallel": 8},
    ),
    (
        "GLM-4.5-FP8 on 8 x H100 (GLM-4.5 README inference table)",
        {"model": "zai-org/GLM-4.5-FP8", "accelerator": "H100-80G", "engine": "sglang"},
        {"tensor_parallel": 8},
    ),
    (
        "GLM-4.6 BF16 on 8 x H200 (GLM-4.6 README inference table)",
        {"model": "zai-org/GLM-4.6", "accelerator": H200, "engine": "vllm", "context_length": 131072},
        {"tensor_parallel": 8},
    ),
    (
        "Qwen3-Next-80B-A3B on 4 GPUs, --tensor-parallel-size 4 --max-model-len 262144 (model card)",
        {
            "model": "Qwen/Qwen3-Next-80B-A3B-Instruct",
            "accelerator": "H100-80G",
            "accelerators_per_node": 4,
            "engine": "vllm",
            "context_length": 262144,
        },
        {"tensor_parallel": 4},
    ),
    (
        "Qwen3-Coder-480B-A35B-Instruct-FP8 on 8 GPUs, TP 8 with expert parallel (model card / vLLM recipe)",
        {"model": "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", "accelerator": H200, "engine": "vllm"},
        {"tensor_parallel": 8, "expert_parallel": 8},
    ),
    (
        "MiniMax-M2 on 4 x 96 GB (MiniMax-M2 deployment guide: 96G x 4 GPUs)",
        {"model": "MiniMaxAI/MiniMax-M2", "accelerator": "H20-96G", "accelerators_per_node": 4, "engine": "vllm"},
        {"tensor_parallel": 4},
    ),
]


@pytest.mark.parametrize("source,request_args,layout", DEPLOYED, ids=[d[0][:50] for d in DEPLOYED])
def test_published_deployment_of_each_new_model(source, request_args, layout):
    auto = plan(request_args)
    assert auto["fits"], (source, auto["reasons"])
    forced = plan(dict(request_args, **layout))
    assert forced["fits"], (source, forced["reasons"])
    for key, value in layout.items():
        assert forced[key] == value
    assert forced["engine_args"]
